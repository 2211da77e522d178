import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  type Address,
  type Caller,
  callerId,
  DEFAULT_WIRE_LIMITS,
  type DocAccess,
  type DocName,
  decodeDocFrame,
  decodeMuxFrame,
  type EncEntry,
  type ErrorKind,
  encodeDocFrame,
  encodeMuxFrame,
  HIDDEN_REASON,
  httpStatusOf,
  isEncryptedScope,
  isSyncError,
  type Level,
  type Message,
  type MessageOfType,
  type ObjectMeta,
  parseDocName,
  type SubscribeMode,
  SyncError,
  type WireLimits,
  wsCloseCodeOf,
  type YProtocolsMessage,
} from '@scopesync/core';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import * as Y from 'yjs';
import type { Counter, Gauge, Metrics } from '../metrics.ts';
import { type AwarenessPeer, AwarenessRoom } from './awareness-room.ts';
import {
  type DocHub,
  type DocListener,
  type DocSubscription,
  type PendingWrite,
  validateUpdate,
} from './doc-hub.ts';
import type { RequestedFlags, SyncAuthority } from './sync-authority.ts';
import { consoleSyncLog, type SyncLog } from './sync-log.ts';
import { parseSyncPath } from './sync-path.ts';

/** Bounds a {@link SyncServer} enforces per socket. */
export interface SyncServerLimits {
  /** Largest WebSocket frame accepted (larger ones close the socket with 1009). */
  readonly maxFrameBytes: number;
  /** Most documents one multiplexed socket may subscribe to at once. */
  readonly maxDocsPerConnection: number;
  /** Longest string (doc name, reason) in a frame, in UTF-8 bytes. */
  readonly maxStringBytes: number;
  /** Most entries the relay sends in one `enc-entries` frame. */
  readonly maxEntriesPerPage: number;
  /** Envelope bytes the relay puts in one `enc-entries` frame (one bigger envelope still goes alone). */
  readonly maxPageBytes: number;
  /** Frames of one socket waiting to be processed before the socket is closed with 4429. */
  readonly maxPendingFrames: number;
  /** Bytes queued for a socket that does not read before it is closed with 4503. */
  readonly maxBufferedBytes: number;
  /** Awareness client ids one subscription may claim. */
  readonly maxAwarenessClients: number;
}

/** The limits a {@link SyncServer} applies unless told otherwise. */
export const DEFAULT_SYNC_LIMITS: SyncServerLimits = Object.freeze({
  maxFrameBytes: 16 * 1024 * 1024,
  maxDocsPerConnection: 1000,
  maxStringBytes: 4 * 1024,
  maxEntriesPerPage: 10_000,
  maxPageBytes: 4 * 1024 * 1024,
  maxPendingFrames: 10_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  maxAwarenessClients: 8,
});

/** Options of a {@link SyncServer}; every optional field has a default. */
export interface SyncServerOptions {
  readonly hub: DocHub;
  readonly authority: SyncAuthority;
  readonly metrics: Metrics;
  readonly limits?: Partial<SyncServerLimits> | undefined;
  /** How often idle sockets are pinged; a socket that missed the previous pong is dropped. Default 30 s. */
  readonly pingIntervalMs?: number | undefined;
  /** How long close() waits for sockets to finish their close handshake. Default 2 s. */
  readonly closeGraceMs?: number | undefined;
  readonly log?: SyncLog | undefined;
}

interface Connection {
  readonly id: number;
  readonly kind: 'doc' | 'mux';
  /** Who the socket authenticated as; the level follows `setUserLevel`. */
  caller: Caller;
  readonly userId: string;
  /** The authority's id of the credential it authenticated with (`credentialOf`), or null. */
  readonly credential: string | null;
  ws: WebSocket | null;
  readonly subs: Map<string, Subscription>;
  /** Frames are processed one after the other, in arrival order. */
  queue: Promise<void>;
  pending: number;
  alive: boolean;
  closed: boolean;
  /** Its credential was revoked: it is closing, and no frame of it is processed any more. */
  revoked: boolean;
  readonly onClosed: Array<() => void>;
}

interface Subscription {
  readonly conn: Connection;
  readonly address: Address;
  readonly name: DocName;
  readonly mode: SubscribeMode;
  /** Flags to create the object with or change it to on the first write (multiplexed subscribe). */
  readonly flags: RequestedFlags;
  /** Whether the caller may write: from a probe or a check; null until known (single-doc, before the first write). */
  mayWrite: boolean | null;
  writeReason: string;
  /** The audited write check and prepareWrite have been done for this subscription. */
  writeChecked: boolean;
  /** A refused write has been audited; later refusals of this subscription are not audited again. */
  denialAudited: boolean;
  /** Bumped by every access re-check, so a write authorised concurrently is re-authorised. */
  accessEpoch: number;
  hubSub: DocSubscription | null;
  readonly peer: AwarenessPeer;
  /** Encrypted mode: live entries held back until the initial fetch has been sent. */
  liveBuffer: EncEntry[] | null;
  active: boolean;
  /**
   * Multiplexed subscriptions refused as "not found" (absent or hidden) wait here until
   * `refreshAccess` finds them readable: the subscribe to start again, and the client's latest
   * SyncStep1 to answer then. Nothing of the document is sent while waiting.
   */
  waiting: { readonly subscribe: MessageOfType<'subscribe'>; stateVector: Uint8Array | null } | null;
}

interface Room {
  readonly subs: Set<Subscription>;
  readonly awareness: AwarenessRoom;
}

type Admission =
  | {
      readonly ok: true;
      readonly object: ObjectMeta | null;
      readonly mayWrite: boolean | null;
      /** The existing object's mode, when the authority knows it. */
      readonly encrypted: boolean | undefined;
    }
  | {
      readonly ok: false;
      readonly reason: string;
      /** The denial hides existence (reason "not found"): absent and hidden look the same. */
      readonly hidden: boolean;
    };

type WriteVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly kind: ErrorKind; readonly reason: string };

const NO_AUDIT = { audit: false } as const;
const CLOSE_NORMAL_SHUTDOWN = 1001;
/** How long a revoked credential is remembered for sockets still upgrading with it, in ms. */
const REVOKED_MEMORY_MS = 60_000;
const ENCRYPTED_BLOB =
  'this blob is end-to-end encrypted: sync it on /sync with the encrypted channel (subscribe mode 1)';
const PLAINTEXT_BLOB = 'this blob syncs as plaintext Yjs: subscribe with mode 0';

/**
 * The relay's WebSocket sync endpoints (docs/wire-protocol.md): `/sync/<doc name>`, exactly
 * y-protocols so that a stock y-websocket `WebsocketProvider` works, and `/sync`, multiplexed,
 * with subscriptions, durable acks and the encrypted channel. Every upgrade is authenticated
 * and checked before the socket opens (refusals are plain HTTP 400/401/403); every write is
 * authorised through the {@link SyncAuthority}; documents change only through the
 * {@link DocHub}. A malformed frame closes that one socket with 4400; nothing a client sends
 * can throw out of the server.
 */
export class SyncServer {
  readonly #hub: DocHub;
  readonly #authority: SyncAuthority;
  readonly #limits: SyncServerLimits;
  readonly #wireLimits: WireLimits;
  readonly #log: SyncLog;
  readonly #closeGraceMs: number;
  readonly #wss: WebSocketServer;
  readonly #conns = new Set<Connection>();
  readonly #rooms = new Map<string, Room>();
  /** Waiting multiplexed subscriptions (see `Subscription.waiting`) by document name. */
  readonly #waiting = new Map<string, Set<Subscription>>();
  readonly #ping: NodeJS.Timeout;
  #nextId = 1;
  /** Counts refreshAccess calls, so a subscription admitted while one ran is re-checked. */
  #refreshes = 0;
  /** Credentials revoked lately → when: an upgrade that authenticated just before is refused on accept. */
  readonly #revoked = new Map<string, number>();
  #closed = false;
  #closing: Promise<void> | null = null;
  readonly #connections: Gauge;
  readonly #messagesIn: Counter;
  readonly #messagesOut: Counter;
  readonly #denials: Counter;

  constructor(options: SyncServerOptions) {
    this.#hub = options.hub;
    this.#authority = options.authority;
    this.#limits = { ...DEFAULT_SYNC_LIMITS, ...definedOnly(options.limits ?? {}) };
    this.#wireLimits = {
      ...DEFAULT_WIRE_LIMITS,
      maxFrameBytes: this.#limits.maxFrameBytes,
      maxStringBytes: this.#limits.maxStringBytes,
    };
    this.#log = options.log ?? consoleSyncLog;
    this.#closeGraceMs = options.closeGraceMs ?? 2000;
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: this.#limits.maxFrameBytes,
    });
    const m = options.metrics;
    this.#connections = m.gauge('scopesync_sync_connections', 'Open sync WebSockets.');
    this.#messagesIn = m.counter('scopesync_sync_messages_received_total', 'Sync frames received.');
    this.#messagesOut = m.counter('scopesync_sync_messages_sent_total', 'Sync frames sent.');
    this.#denials = m.counter(
      'scopesync_sync_denials_total',
      'Sync requests refused: upgrades, subscriptions, writes and revoked subscriptions.',
    );
    this.#ping = setInterval(() => this.#heartbeat(), options.pingIntervalMs ?? 30_000);
    this.#ping.unref();
  }

  /** Open sync sockets. */
  get connections(): number {
    return this.#conns.size;
  }

  /**
   * Handles an HTTP upgrade for `/sync` or `/sync/<doc name>`. Refuses with a plain HTTP
   * response (400 bad name, 401 invalid key, 403 no read access, 503 shutting down) before
   * the socket opens. Never throws.
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const onError = (error: Error): void => {
      this.#log('warn', 'sync upgrade socket error', { error, url: request.url });
    };
    socket.on('error', onError);
    this.#upgrade(request, socket, head)
      .catch((error: unknown) => {
        this.#log('error', 'sync upgrade failed', { error, url: redactKey(request.url) });
        refuse(socket, 'Internal', 'internal error');
      })
      .finally(() => socket.off('error', onError));
  }

  /**
   * Re-checks every live subscription of `name` (after a share was revoked or the object's
   * flags changed): a subscription that lost read gets permission `none` and ends
   * (multiplexed) or its socket is closed with 4403 (single-doc); one that lost write has
   * later writes refused at once. A waiting subscription (refused as "not found") that may read
   * now starts: permission, then the normal sync. Resolves when every subscription has been
   * re-checked.
   */
  async refreshAccess(name: DocName): Promise<void> {
    this.#refreshes += 1;
    const subs = [...(this.#rooms.get(name)?.subs ?? []), ...(this.#waiting.get(name) ?? [])];
    await Promise.all(subs.map((sub) => this.#recheck(sub)));
  }

  /**
   * Closes every socket that authenticated with `credential` (see `SyncAuthority.credentialOf`)
   * with 4401, at once, and refuses sockets still upgrading with it. For a revoked API key.
   * Returns how many sockets it closed.
   */
  closeCredential(credential: string, reason = 'API key revoked'): number {
    const now = Date.now();
    for (const [old, at] of this.#revoked) {
      if (now - at < REVOKED_MEMORY_MS) break; // insertion order is time order
      this.#revoked.delete(old);
    }
    this.#revoked.delete(credential);
    this.#revoked.set(credential, now);
    let closed = 0;
    for (const conn of this.#conns) {
      if (conn.credential !== credential) continue;
      this.#denials.inc();
      // End the subscriptions now, not when the close handshake completes: frames already
      // received from this socket must not read or write anything.
      conn.revoked = true;
      for (const sub of [...conn.subs.values()]) this.#dropSub(sub);
      this.#closeConn(conn, wsCloseCodeOf('Unauthorized'), reason);
      closed += 1;
    }
    return closed;
  }

  /**
   * Applies a user's new level to their live sockets and re-checks each of their subscriptions
   * at once, as `refreshAccess` does: a demoted moderator loses what only the level allowed, a
   * promoted user gains it (multiplexed sockets are told with a permission message).
   */
  async setUserLevel(userId: string, level: Level): Promise<void> {
    this.#refreshes += 1;
    const subs: Subscription[] = [];
    for (const conn of this.#conns) {
      if (conn.caller.kind !== 'user' || conn.caller.userId !== userId) continue;
      conn.caller = { ...conn.caller, level };
      subs.push(...conn.subs.values());
    }
    await Promise.all(subs.map((sub) => this.#recheck(sub)));
  }

  /** Stops accepting, closes every socket with 1001, and flushes the hub's pending writes. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#ping);
    const conns = [...this.#conns];
    const closed = conns.map(
      (conn) =>
        new Promise<void>((resolve) => {
          if (conn.closed || !conn.ws) return resolve();
          conn.onClosed.push(resolve);
          conn.ws.close(CLOSE_NORMAL_SHUTDOWN, 'relay shutting down');
        }),
    );
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#closeGraceMs);
      timer.unref();
    });
    await Promise.race([Promise.all(closed), grace]);
    clearTimeout(timer);
    for (const conn of conns) {
      if (!conn.closed) conn.ws?.terminate();
    }
    await Promise.allSettled(conns.map((c) => c.queue));
    await this.#hub.flush();
    this.#wss.close();
  }

  // --- upgrade -----------------------------------------------------------------------

  async #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (this.#closed) return refuse(socket, 'Unavailable', 'the relay is shutting down');
    let target: ReturnType<typeof parseSyncPath>;
    try {
      target = parseSyncPath(request.url);
    } catch (error) {
      return refuse(socket, 'BadRequest', isSyncError(error) ? error.message : 'bad request');
    }
    if (target === null) return refuse(socket, 'NotFound', 'no such sync endpoint');
    let caller: Caller;
    try {
      caller = await this.#authority.authenticate(request);
    } catch (error) {
      if (!isSyncError(error)) throw error;
      this.#denials.inc();
      return refuse(socket, error.kind, error.message);
    }
    const credential = this.#authority.credentialOf?.(request) ?? null;
    if (target.kind === 'mux') {
      if (this.#closed) return refuse(socket, 'Unavailable', 'the relay is shutting down');
      const conn = this.#newConnection('mux', caller, credential);
      this.#complete(request, socket, head, conn, () => undefined);
      return;
    }

    const { address } = target;
    const refreshes = this.#refreshes;
    let admission = await this.#admit(caller, address);
    if (!admission.ok) {
      this.#denials.inc();
      return refuse(socket, 'Forbidden', admission.reason);
    }
    if (address.kind === 'doc' && isEncryptedScope(address.scope)) {
      return refuse(
        socket,
        'BadRequest',
        'USER_PRIVATE documents are end-to-end encrypted: sync them on /sync with the encrypted channel',
      );
    }
    if (address.kind === 'blob' && admission.encrypted === true) {
      return refuse(socket, 'BadRequest', ENCRYPTED_BLOB);
    }
    const conn = this.#newConnection('doc', caller, credential);
    const sub = this.#newSub(conn, address, 'plaintext', {}, admission.mayWrite);
    try {
      sub.hubSub = await this.#hub.subscribe(address.name, 'plaintext', this.#listener(sub));
    } catch (error) {
      this.#dropSub(sub);
      if (!isSyncError(error)) throw error;
      return refuse(socket, error.kind, error.message);
    }
    if (this.#closed) {
      this.#dropSub(sub);
      return refuse(socket, 'Unavailable', 'the relay is shutting down');
    }
    this.#join(sub);
    if (this.#refreshes !== refreshes) {
      // Access may have been revoked while we admitted: decide again before opening.
      admission = await this.#admit(caller, address);
      if (!admission.ok || this.#closed) {
        this.#dropSub(sub);
        this.#denials.inc();
        return admission.ok
          ? refuse(socket, 'Unavailable', 'the relay is shutting down')
          : refuse(socket, 'Forbidden', admission.reason);
      }
      sub.mayWrite = admission.mayWrite;
    }
    this.#complete(request, socket, head, conn, () => this.#dropSub(sub));
  }

  /** Finishes the WebSocket handshake; `abandon` cleans up when the socket died meanwhile. */
  #complete(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    conn: Connection,
    abandon: () => void,
  ): void {
    let accepted = false;
    const onClose = (): void => {
      if (!accepted) abandon();
    };
    socket.once('close', onClose);
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      accepted = true;
      socket.off('close', onClose);
      this.#accept(conn, ws);
    });
  }

  #newConnection(kind: Connection['kind'], caller: Caller, credential: string | null): Connection {
    return {
      id: this.#nextId++,
      kind,
      caller,
      userId: callerId(caller),
      credential,
      ws: null,
      subs: new Map(),
      queue: Promise.resolve(),
      pending: 0,
      alive: true,
      closed: false,
      revoked: false,
      onClosed: [],
    };
  }

  #accept(conn: Connection, ws: WebSocket): void {
    conn.ws = ws;
    this.#conns.add(conn);
    this.#connections.inc();
    ws.on('message', (data, isBinary) => this.#receive(conn, data, isBinary));
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('error', (error) => {
      this.#log('warn', 'sync socket error', this.#context(conn, { error }));
    });
    ws.on('close', () => this.#onSocketClosed(conn));
    if (this.#closed) {
      ws.close(CLOSE_NORMAL_SHUTDOWN, 'relay shutting down');
      return;
    }
    if (conn.credential !== null && this.#revoked.has(conn.credential)) {
      // Revoked while this socket was upgrading: closeCredential could not see it yet.
      ws.close(wsCloseCodeOf('Unauthorized'), 'API key revoked');
      return;
    }
    if (conn.kind === 'doc') {
      const sub = [...conn.subs.values()][0];
      if (!sub?.active) {
        ws.close(wsCloseCodeOf('Forbidden'), 'access revoked');
        return;
      }
      this.#enqueue(conn, () => this.#greetPlaintext(sub));
    }
  }

  #onSocketClosed(conn: Connection): void {
    if (conn.closed) return;
    conn.closed = true;
    for (const sub of [...conn.subs.values()]) this.#dropSub(sub);
    if (this.#conns.delete(conn)) this.#connections.dec();
    for (const resolve of conn.onClosed.splice(0)) resolve();
  }

  #heartbeat(): void {
    for (const conn of this.#conns) {
      if (!conn.ws) continue;
      if (!conn.alive) {
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      try {
        conn.ws.ping();
      } catch (error) {
        this.#log('warn', 'ping failed', this.#context(conn, { error }));
      }
    }
  }

  // --- access ------------------------------------------------------------------------

  /**
   * Decides whether `caller` may start syncing `address`: with read access, or — for an
   * object that does not exist yet — when it may create it (an empty document reveals
   * nothing). The start is audited once, as a read, when the engine says so.
   */
  async #admit(caller: Caller, address: Address, auditRefusal = true): Promise<Admission> {
    const probe = await this.#authority.check(caller, 'read', address, NO_AUDIT);
    if (probe.decision.allowed) {
      if (!probe.decision.audit)
        return { ok: true, object: probe.object, mayWrite: null, encrypted: probe.encrypted };
      const real = await this.#authority.check(caller, 'read', address);
      return real.decision.allowed
        ? { ok: true, object: real.object, mayWrite: null, encrypted: real.encrypted }
        : { ok: false, reason: real.decision.reason, hidden: real.decision.hideExistence };
    }
    if (probe.object === null) {
      const create = await this.#authority.check(caller, 'write', address, NO_AUDIT);
      if (create.decision.allowed) return { ok: true, object: null, mayWrite: true, encrypted: undefined };
    }
    // A waiting subscription's refusal was recorded when it was refused first.
    if (!auditRefusal) {
      return { ok: false, reason: probe.decision.reason, hidden: probe.decision.hideExistence };
    }
    // Record the refused attempt.
    const real = await this.#authority.check(caller, 'read', address);
    return real.decision.allowed
      ? { ok: true, object: real.object, mayWrite: null, encrypted: real.encrypted }
      : { ok: false, reason: real.decision.reason, hidden: real.decision.hideExistence };
  }

  /** Authorises a write of `sub`: the audited write check and prepareWrite once per subscription. */
  async #authorizeWrite(sub: Subscription): Promise<WriteVerdict> {
    for (;;) {
      if (sub.writeChecked && sub.mayWrite === true) return { ok: true };
      if (sub.mayWrite === false && sub.denialAudited)
        return { ok: false, kind: 'Forbidden', reason: sub.writeReason };
      const epoch = sub.accessEpoch;
      const { caller } = sub.conn;
      let checked: Awaited<ReturnType<SyncAuthority['check']>>;
      let prepared: ObjectMeta | null = null;
      try {
        checked = await this.#authority.check(caller, 'write', sub.address);
        if (checked.decision.allowed)
          prepared = await this.#authority.prepareWrite(caller, sub.address, sub.flags);
      } catch (error) {
        if (!isSyncError(error)) {
          this.#log(
            'error',
            'authorising a sync write failed',
            this.#context(sub.conn, { doc: sub.name, error }),
          );
          return { ok: false, kind: 'Internal', reason: 'the relay could not authorise the write' };
        }
        return { ok: false, kind: error.kind, reason: error.message };
      }
      if (sub.accessEpoch !== epoch) continue; // access was re-checked meanwhile: decide again
      if (!checked.decision.allowed || prepared === null) {
        sub.mayWrite = false;
        sub.denialAudited = true;
        sub.writeReason = checked.decision.reason;
        return { ok: false, kind: 'Forbidden', reason: checked.decision.reason };
      }
      sub.mayWrite = true;
      sub.writeChecked = true;
      const before = checked.object;
      if (
        !before ||
        before.read !== prepared.read ||
        before.write !== prepared.write ||
        before.owner !== prepared.owner
      ) {
        // Created, or flags changed: other subscriptions of the document may see it differently now.
        this.refreshAccess(sub.name).catch((error: unknown) => {
          this.#log('error', 'refreshing access after a write failed', { doc: sub.name, error });
        });
      }
      return { ok: true };
    }
  }

  async #recheck(sub: Subscription): Promise<void> {
    if (sub.waiting) return this.#schedulePromote(sub);
    sub.accessEpoch += 1;
    const { caller } = sub.conn;
    try {
      const read = await this.#authority.check(caller, 'read', sub.address, NO_AUDIT);
      let readable = read.decision.allowed;
      let writable: boolean | null = null;
      if (!readable && read.object === null) {
        writable = (await this.#authority.check(caller, 'write', sub.address, NO_AUDIT)).decision.allowed;
        readable = writable;
      }
      if (!sub.active) return;
      if (!readable) {
        this.#denials.inc();
        this.#revoke(sub, read.decision.reason);
        return;
      }
      let writeReason = '';
      if (writable === null) {
        const write = await this.#authority.check(caller, 'write', sub.address, NO_AUDIT);
        writable = write.decision.allowed;
        writeReason = write.decision.reason;
      }
      if (!sub.active) return;
      const before = accessOf(sub);
      if (!writable) {
        sub.mayWrite = false;
        sub.writeChecked = false;
        sub.writeReason = writeReason;
      } else if (sub.mayWrite !== true) {
        sub.mayWrite = true;
        sub.writeChecked = false;
        sub.denialAudited = false;
      }
      const after = accessOf(sub);
      if (sub.conn.kind === 'mux' && after !== before) {
        this.#send(sub, { type: 'permission', access: after, reason: writable ? '' : writeReason });
      }
    } catch (error) {
      // Access could not be verified: fail closed for this subscription.
      this.#log('error', 're-checking sync access failed; ending the subscription', {
        ...this.#context(sub.conn, { doc: sub.name, error }),
      });
      if (!sub.active) return;
      if (sub.conn.kind === 'mux') {
        this.#send(sub, {
          type: 'error',
          ref: 0,
          kind: 'Unavailable',
          message: 'access could not be verified',
        });
        this.#dropSub(sub);
      } else {
        this.#closeConn(sub.conn, wsCloseCodeOf('Unavailable'), 'access could not be verified');
      }
    }
  }

  /** Ends a subscription that lost read access. */
  #revoke(sub: Subscription, reason: string): void {
    if (sub.conn.kind === 'mux') {
      this.#send(sub, { type: 'permission', access: 'none', reason: reason || 'access revoked' });
      this.#dropSub(sub);
    } else if (!sub.conn.ws) {
      this.#dropSub(sub); // still upgrading: #accept closes the socket right away
    } else {
      this.#closeConn(sub.conn, wsCloseCodeOf('Forbidden'), reason || 'access revoked');
    }
  }

  // --- subscriptions -----------------------------------------------------------------

  #newSub(
    conn: Connection,
    address: Address,
    mode: SubscribeMode,
    flags: RequestedFlags,
    mayWrite: boolean | null,
  ): Subscription {
    const sub: Subscription = {
      conn,
      address,
      name: address.name,
      mode,
      flags,
      mayWrite,
      writeReason: '',
      writeChecked: false,
      denialAudited: false,
      accessEpoch: 0,
      hubSub: null,
      peer: {
        userId: conn.userId,
        claimKey: conn.caller.kind === 'user' ? conn.userId : null,
        send: (update) => this.#send(sub, { type: 'awareness', update }),
      },
      liveBuffer: mode === 'encrypted' ? [] : null,
      active: true,
      waiting: null,
    };
    conn.subs.set(address.name, sub);
    return sub;
  }

  #listener(sub: Subscription): DocListener {
    return {
      update: (update, origin) => {
        if (sub.active && origin !== sub) this.#send(sub, { type: 'sync-update', update });
      },
      encrypted: (entry, origin) => {
        if (!sub.active || origin === sub) return;
        if (sub.liveBuffer) sub.liveBuffer.push(entry);
        else this.#send(sub, { type: 'enc-entries', headSeq: entry.seq, entries: [entry] });
      },
      removed: () => {
        if (!sub.active) return;
        if (sub.conn.kind === 'mux') {
          this.#send(sub, { type: 'permission', access: 'none', reason: 'deleted' });
          this.#dropSub(sub);
        } else {
          this.#closeConn(sub.conn, wsCloseCodeOf('NotFound'), 'deleted');
        }
      },
    };
  }

  #join(sub: Subscription): void {
    let room = this.#rooms.get(sub.name);
    if (!room) {
      room = {
        subs: new Set(),
        awareness: new AwarenessRoom({ maxClientsPerPeer: this.#limits.maxAwarenessClients }),
      };
      this.#rooms.set(sub.name, room);
    }
    room.subs.add(sub);
    room.awareness.join(sub.peer);
  }

  #dropSub(sub: Subscription): void {
    if (!sub.active) return;
    sub.active = false;
    sub.hubSub?.close();
    if (sub.conn.subs.get(sub.name) === sub) sub.conn.subs.delete(sub.name);
    const waiting = this.#waiting.get(sub.name);
    if (waiting?.delete(sub) && waiting.size === 0) this.#waiting.delete(sub.name);
    const room = this.#rooms.get(sub.name);
    if (room?.subs.delete(sub)) {
      room.awareness.leave(sub.peer);
      if (room.subs.size === 0) this.#rooms.delete(sub.name);
    }
  }

  /** Sends SyncStep1 and the current awareness states: the start of a plaintext sync. */
  async #greetPlaintext(sub: Subscription): Promise<void> {
    const stateVector = await this.#hub.read(sub.name, (doc) => Y.encodeStateVector(doc));
    if (!sub.active) return;
    this.#send(sub, { type: 'sync-step1', stateVector });
    const states = this.#rooms.get(sub.name)?.awareness.encodeStates();
    if (states) this.#send(sub, { type: 'awareness', update: states });
  }

  // --- frames ------------------------------------------------------------------------

  #receive(conn: Connection, data: RawData, isBinary: boolean): void {
    this.#messagesIn.inc();
    if (conn.closed || conn.revoked) return;
    if (!isBinary) {
      this.#closeConn(conn, wsCloseCodeOf('InvalidMessage'), 'text frames are not part of the protocol');
      return;
    }
    if (conn.pending >= this.#limits.maxPendingFrames) {
      this.#closeConn(conn, wsCloseCodeOf('RateLimited'), 'too many frames waiting to be processed');
      return;
    }
    const bytes = toBytes(data);
    this.#enqueue(conn, () =>
      conn.kind === 'doc' ? this.#processDoc(conn, bytes) : this.#processMux(conn, bytes),
    );
  }

  /** Runs `task` after the connection's earlier frames; whatever it throws closes only this socket. */
  #enqueue(conn: Connection, task: () => Promise<void>): void {
    conn.pending += 1;
    conn.queue = conn.queue
      .then(() => (conn.closed || conn.revoked ? undefined : task()))
      .catch((error: unknown) => this.#fail(conn, error))
      .finally(() => {
        conn.pending -= 1;
      });
  }

  #fail(conn: Connection, error: unknown): void {
    if (isSyncError(error)) {
      if (error.kind !== 'InvalidMessage') {
        this.#log('warn', 'closing a sync socket after an error', this.#context(conn, { error }));
      }
      this.#closeConn(conn, wsCloseCodeOf(error.kind), error.message);
      return;
    }
    this.#log('error', 'a sync handler threw; closing its socket', this.#context(conn, { error }));
    this.#closeConn(conn, wsCloseCodeOf('Internal'), 'internal error');
  }

  async #processDoc(conn: Connection, bytes: Uint8Array): Promise<void> {
    const message = decodeDocFrame(bytes, this.#wireLimits);
    const sub = [...conn.subs.values()][0];
    if (!sub) return;
    await this.#handleYProtocols(sub, message);
  }

  async #processMux(conn: Connection, bytes: Uint8Array): Promise<void> {
    const { docName, message } = decodeMuxFrame(bytes, this.#wireLimits);
    switch (message.type) {
      case 'permission':
      case 'ack':
      case 'error':
      case 'enc-entries':
        throw new SyncError('InvalidMessage', `${message.type} is sent by the relay, not to it`);
      default:
    }
    const ref = 'ref' in message ? message.ref : 0;
    let address: Address;
    try {
      address = parseDocName(docName);
    } catch (error) {
      const text = isSyncError(error) ? error.message : 'bad document name';
      this.#sendTo(conn, docName, { type: 'error', ref, kind: 'BadRequest', message: text });
      return;
    }
    if (message.type === 'subscribe') return this.#subscribeMux(conn, address, message);
    const sub = conn.subs.get(address.name);
    if (message.type === 'unsubscribe') {
      if (sub) this.#dropSub(sub);
      return;
    }
    if (sub?.waiting) return this.#whileWaiting(sub, message);
    if (!sub?.hubSub) {
      const text = 'not subscribed to this document: send subscribe first';
      this.#sendTo(conn, address.name, { type: 'error', ref, kind: 'BadRequest', message: text });
      return;
    }
    switch (message.type) {
      case 'sync-step1':
      case 'sync-step2':
      case 'sync-update':
      case 'tracked-update':
        if (sub.mode !== 'plaintext')
          return this.#refuse(sub, ref, 'BadRequest', 'this subscription is encrypted');
        if (message.type === 'tracked-update') return this.#plainWrite(sub, message.update, message.ref);
        return this.#handleYProtocols(sub, message);
      case 'awareness':
      case 'query-awareness':
      case 'permission-denied':
        return this.#handleYProtocols(sub, message);
      case 'enc-append':
      case 'enc-fetch':
      case 'enc-snapshot':
        if (sub.mode !== 'encrypted')
          return this.#refuse(sub, ref, 'BadRequest', 'this subscription is not encrypted');
        return this.#handleEncrypted(sub, message);
    }
  }

  /** Answers a request with an error; with ref 0 the error ends the subscription (wire protocol). */
  #refuse(sub: Subscription, ref: number, kind: ErrorKind, message: string): void {
    this.#send(sub, { type: 'error', ref, kind, message });
    if (ref === 0) this.#dropSub(sub);
  }

  async #handleYProtocols(sub: Subscription, message: YProtocolsMessage): Promise<void> {
    switch (message.type) {
      case 'sync-step1': {
        const update = await this.#hub.read(sub.name, (doc) => {
          try {
            return Y.encodeStateAsUpdate(doc, message.stateVector);
          } catch (error) {
            throw new SyncError('InvalidMessage', 'malformed state vector', { cause: error });
          }
        });
        this.#send(sub, { type: 'sync-step2', update });
        return;
      }
      case 'sync-step2':
      case 'sync-update':
        return this.#plainWrite(sub, message.update, 0);
      case 'awareness':
        this.#rooms.get(sub.name)?.awareness.receive(sub.peer, message.update);
        return;
      case 'query-awareness': {
        const states = this.#rooms.get(sub.name)?.awareness.encodeStates();
        if (states) this.#send(sub, { type: 'awareness', update: states });
        return;
      }
      case 'permission-denied':
        return; // only the relay denies; a client's auth message means nothing here
    }
  }

  /**
   * A plaintext Yjs update from a client: `ref` > 0 for a tracked update (acked with 103 after
   * the commit, or answered with 104), 0 for a y-protocols step2/update (not acknowledged).
   */
  async #plainWrite(sub: Subscription, update: Uint8Array, ref: number): Promise<void> {
    try {
      validateUpdate(update);
    } catch (error) {
      if (ref === 0) throw error; // a malformed untracked update is a malformed frame: close 4400
      this.#send(sub, { type: 'error', ref, kind: 'InvalidMessage', message: 'malformed Yjs update' });
      return;
    }
    const verdict = await this.#authorizeWrite(sub);
    if (!verdict.ok) {
      this.#denials.inc();
      if (ref > 0) this.#send(sub, { type: 'error', ref, kind: verdict.kind, message: verdict.reason });
      else if (await this.#carriesNews(sub, update)) {
        this.#send(sub, { type: 'permission-denied', reason: verdict.reason });
      }
      return;
    }
    let pending: PendingWrite;
    try {
      pending = await this.#hub.enqueueUpdate(sub.name, update, sub);
    } catch (error) {
      if (ref === 0) throw error;
      this.#answerError(sub, ref, error);
      return;
    }
    pending.committed.then(
      ({ seq }) => {
        if (ref > 0) this.#send(sub, { type: 'ack', ref, seq });
      },
      (error: unknown) => {
        if (ref > 0) return this.#answerError(sub, ref, error);
        // The client believes the update was delivered. Closing makes it reconnect and re-sync,
        // which sends the update again.
        this.#closeConn(sub.conn, wsCloseCodeOf('Unavailable'), 'the relay could not store an update');
      },
    );
  }

  /** Whether a refused update would have changed the document (only then is the refusal worth telling). */
  async #carriesNews(sub: Subscription, update: Uint8Array): Promise<boolean> {
    try {
      return await this.#hub.read(sub.name, (doc) => !Y.snapshotContainsUpdate(Y.snapshot(doc), update));
    } catch {
      return true;
    }
  }

  async #handleEncrypted(
    sub: Subscription,
    message: MessageOfType<'enc-append'> | MessageOfType<'enc-fetch'> | MessageOfType<'enc-snapshot'>,
  ): Promise<void> {
    if (message.type === 'enc-fetch') {
      await this.#sendEntries(sub, message.sinceSeq);
      return;
    }
    const verdict = await this.#authorizeWrite(sub);
    if (!verdict.ok) {
      this.#denials.inc();
      this.#send(sub, { type: 'error', ref: message.ref, kind: verdict.kind, message: verdict.reason });
      return;
    }
    const context = { caller: sub.conn.caller, origin: sub };
    if (message.type === 'enc-snapshot') {
      try {
        await this.#hub.snapshotEncrypted(sub.name, message.throughSeq, message.snapshot, context);
        this.#send(sub, { type: 'ack', ref: message.ref, seq: message.throughSeq });
      } catch (error) {
        this.#answerError(sub, message.ref, error);
      }
      return;
    }
    let pending: PendingWrite;
    try {
      pending = await this.#hub.enqueueEncrypted(sub.name, message.envelope, context);
    } catch (error) {
      this.#answerError(sub, message.ref, error);
      return;
    }
    pending.committed.then(
      ({ seq }) => this.#send(sub, { type: 'ack', ref: message.ref, seq }),
      (error: unknown) => this.#answerError(sub, message.ref, error),
    );
  }

  /** Sends the encrypted log after `sinceSeq` in pages; returns the last seq sent (or `sinceSeq`). */
  async #sendEntries(sub: Subscription, sinceSeq: number): Promise<number> {
    let since = sinceSeq;
    for (let first = true; ; first = false) {
      const page = await this.#hub.fetchEncrypted(sub.name, since, {
        maxBytes: this.#limits.maxPageBytes,
        maxEntries: this.#limits.maxEntriesPerPage,
      });
      if (!sub.active) return since;
      const last = page.entries.at(-1)?.seq;
      if (page.entries.length > 0 || first) {
        this.#send(sub, { type: 'enc-entries', headSeq: page.headSeq, entries: page.entries });
      }
      if (last === undefined) return since;
      since = last;
      if (last >= page.headSeq) return since;
    }
  }

  async #subscribeMux(
    conn: Connection,
    address: Address,
    message: MessageOfType<'subscribe'>,
  ): Promise<void> {
    const name = address.name;
    const existing = conn.subs.get(name);
    if (existing) this.#dropSub(existing); // subscribing again restarts the document's sync
    const answer = (kind: ErrorKind, text: string): void => {
      this.#sendTo(conn, name, { type: 'error', ref: 0, kind, message: text });
    };
    if (conn.subs.size >= this.#limits.maxDocsPerConnection) {
      return answer('TooLarge', `at most ${this.#limits.maxDocsPerConnection} documents per connection`);
    }
    const encryptable = address.kind === 'blob' || isEncryptedScope(address.scope);
    if (message.mode === 'plaintext' && address.kind === 'doc' && isEncryptedScope(address.scope)) {
      return answer('BadRequest', 'USER_PRIVATE documents are end-to-end encrypted: subscribe with mode 1');
    }
    if (message.mode === 'encrypted' && !encryptable) {
      return answer('BadRequest', 'only USER_PRIVATE documents and blobs use the encrypted channel');
    }
    const refreshes = this.#refreshes;
    const admission = await this.#admit(conn.caller, address);
    if (conn.closed || conn.revoked) return;
    if (!admission.ok) {
      this.#denials.inc();
      if (admission.hidden) {
        // Absent or hidden (the same to the caller): wait until refreshAccess finds it readable.
        const sub = this.#newSub(conn, address, message.mode, {}, null);
        sub.waiting = { subscribe: message, stateVector: null };
        let waiting = this.#waiting.get(name);
        if (!waiting) {
          waiting = new Set();
          this.#waiting.set(name, waiting);
        }
        waiting.add(sub);
        // Created or shared while we admitted: check again, after this answer.
        if (this.#refreshes !== refreshes) void this.#schedulePromote(sub);
      }
      this.#sendTo(
        conn,
        name,
        admission.hidden
          ? { type: 'permission', access: 'waiting', reason: '' }
          : { type: 'permission', access: 'none', reason: admission.reason },
      );
      return;
    }
    await this.#startMux(conn, address, message, admission, refreshes, null);
  }

  /**
   * Starts an admitted multiplexed subscription: permission, then the plaintext greeting (and
   * the answer to `stateVector`, a SyncStep1 the client sent while its subscription waited) or
   * the encrypted log.
   */
  async #startMux(
    conn: Connection,
    address: Address,
    message: MessageOfType<'subscribe'>,
    admission: Extract<Admission, { ok: true }>,
    refreshes: number,
    stateVector: Uint8Array | null,
  ): Promise<void> {
    const name = address.name;
    const answer = (kind: ErrorKind, text: string): void => {
      this.#sendTo(conn, name, { type: 'error', ref: 0, kind, message: text });
    };
    // A blob's mode is fixed when it is created; told only to callers who may read it.
    if (address.kind === 'blob' && admission.encrypted !== undefined) {
      if (admission.encrypted && message.mode !== 'encrypted') return answer('BadRequest', ENCRYPTED_BLOB);
      if (!admission.encrypted && message.mode === 'encrypted') return answer('BadRequest', PLAINTEXT_BLOB);
    }
    const mayWrite =
      admission.mayWrite ??
      (await this.#authority.check(conn.caller, 'write', address, NO_AUDIT)).decision.allowed;
    if (conn.closed || conn.revoked) return;
    const flags: RequestedFlags = {
      read: message.read,
      write: message.write,
      encrypted: message.mode === 'encrypted',
    };
    const sub = this.#newSub(conn, address, message.mode, flags, mayWrite);
    try {
      sub.hubSub = await this.#hub.subscribe(name, message.mode, this.#listener(sub));
    } catch (error) {
      this.#dropSub(sub);
      if (!isSyncError(error)) throw error;
      return answer(error.kind, error.message);
    }
    if (!sub.active) {
      sub.hubSub.close();
      return;
    }
    this.#join(sub);
    this.#send(sub, { type: 'permission', access: accessOf(sub), reason: '' });
    // Access may have changed while we admitted: re-check (it announces any change itself).
    if (this.#refreshes !== refreshes) await this.#recheck(sub);
    if (!sub.active) return;
    if (message.mode === 'plaintext') {
      await this.#greetPlaintext(sub);
      if (stateVector && sub.active) await this.#handleYProtocols(sub, { type: 'sync-step1', stateVector });
      return;
    }
    // Live entries committed during the initial fetch wait in liveBuffer, so the client sees
    // the log in order; those the fetch already carried are not sent twice.
    const sent = await this.#sendEntries(sub, message.sinceSeq);
    const buffered = sub.liveBuffer ?? [];
    sub.liveBuffer = null;
    if (!sub.active) return;
    for (const entry of buffered) {
      if (entry.seq > sent) this.#send(sub, { type: 'enc-entries', headSeq: entry.seq, entries: [entry] });
    }
  }

  /**
   * Re-checks a waiting subscription in its connection's frame order; resolves when done.
   * Never rejects (a failure closes the socket, like a failing frame).
   */
  #schedulePromote(sub: Subscription): Promise<void> {
    const conn = sub.conn;
    if (conn.closed || conn.revoked) return Promise.resolve();
    this.#enqueue(conn, () => this.#promote(sub));
    return conn.queue;
  }

  /** Starts a waiting subscription once its caller may read the document; else it waits on. */
  async #promote(sub: Subscription): Promise<void> {
    const waiting = sub.waiting;
    const { conn, address } = sub;
    if (!waiting || !sub.active || conn.subs.get(sub.name) !== sub) return;
    const refreshes = this.#refreshes;
    const admission = await this.#admit(conn.caller, address, false);
    if (!sub.active || conn.closed || conn.revoked || sub.waiting !== waiting) return;
    if (!admission.ok) {
      if (admission.hidden) return; // still absent or hidden: keep waiting
      this.#denials.inc();
      this.#sendTo(conn, sub.name, { type: 'permission', access: 'none', reason: admission.reason });
      this.#dropSub(sub);
      return;
    }
    this.#dropSub(sub);
    await this.#startMux(conn, address, waiting.subscribe, admission, refreshes, waiting.stateVector);
  }

  /**
   * A frame about a waiting subscription: nothing of the document is read or written. The
   * latest SyncStep1 is kept for when the subscription starts; writes with a ref are refused as
   * for a document not subscribed to (the same whether it is absent or hidden); everything else
   * is dropped.
   */
  #whileWaiting(sub: Subscription, message: Message): void {
    const waiting = sub.waiting;
    if (!waiting) return;
    switch (message.type) {
      case 'sync-step1':
        if (sub.mode === 'plaintext') waiting.stateVector = message.stateVector;
        return;
      case 'tracked-update':
      case 'enc-append':
      case 'enc-snapshot':
        this.#denials.inc();
        this.#sendTo(sub.conn, sub.name, {
          type: 'error',
          ref: message.ref,
          kind: 'BadRequest',
          message: `not subscribed to this document yet: ${HIDDEN_REASON}`,
        });
        return;
      default:
    }
  }

  // --- sending -----------------------------------------------------------------------

  #answerError(sub: Subscription, ref: number, error: unknown): void {
    if (isSyncError(error)) {
      this.#send(sub, { type: 'error', ref, kind: error.kind, message: error.message });
      return;
    }
    this.#log('error', 'a sync request failed', this.#context(sub.conn, { doc: sub.name, ref, error }));
    this.#send(sub, { type: 'error', ref, kind: 'Internal', message: 'internal error' });
  }

  #send(sub: Subscription, message: Message): void {
    // Answers (permission, ack, error) still go out after a subscription ended: an ack reports
    // durability whether or not the client still listens to the document. Pushes do not.
    const answer = message.type === 'permission' || message.type === 'error' || message.type === 'ack';
    if (!sub.active && !answer) return;
    if (sub.conn.kind === 'doc') {
      if (message.type === 'error' || message.type === 'permission') return; // not y-protocols: no such frame
      this.#sendTo(sub.conn, null, message);
    } else {
      this.#sendTo(sub.conn, sub.name, message);
    }
  }

  /** Encodes and sends one frame; `docName` null for the single-document endpoint. Never throws. */
  #sendTo(conn: Connection, docName: string | null, message: Message): void {
    const ws = conn.ws;
    if (!ws || conn.closed || ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > this.#limits.maxBufferedBytes) {
      this.#closeConn(conn, wsCloseCodeOf('Unavailable'), 'the client does not read its socket');
      return;
    }
    let frame: Uint8Array;
    try {
      frame =
        docName === null ? encodeDocFrame(message as YProtocolsMessage) : encodeMuxFrame(docName, message);
    } catch (error) {
      this.#log('error', 'could not encode a sync frame', this.#context(conn, { type: message.type, error }));
      return;
    }
    ws.send(frame, (error) => {
      if (error) this.#log('warn', 'sending a sync frame failed', this.#context(conn, { error }));
    });
    this.#messagesOut.inc();
  }

  #closeConn(conn: Connection, code: number, reason: string): void {
    const ws = conn.ws;
    if (!ws || ws.readyState === ws.CLOSING || ws.readyState === ws.CLOSED) return;
    ws.close(code, truncateReason(reason));
  }

  #context(conn: Connection, extra: Record<string, unknown>): Record<string, unknown> {
    return { connection: conn.id, endpoint: conn.kind, caller: conn.userId, ...extra };
  }
}

function accessOf(sub: Subscription): DocAccess {
  return sub.mayWrite === true ? 'read-write' : 'read';
}

/** Answers an upgrade with a plain HTTP error and closes the socket: never open-then-close. */
function refuse(socket: Duplex, kind: ErrorKind, message: string): void {
  if (socket.destroyed || !socket.writable) return;
  const status = httpStatusOf(kind);
  const body = JSON.stringify({ error: kind, message });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Close reasons are limited to 123 bytes of UTF-8. */
function truncateReason(reason: string): string {
  let out = reason;
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}

function redactKey(url: string | undefined): string | undefined {
  return url?.replace(/([?&]key=)[^&]*/g, '$1…');
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
