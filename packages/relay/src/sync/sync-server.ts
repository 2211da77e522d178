import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type Caller, DEFAULT_WIRE_LIMITS, isSyncError, type WireLimits } from '@scopesync/core';
import { type WebSocket, WebSocketServer } from 'ws';
import { ExpiryTimers } from '../auth/expiry-timers.ts';
import { chooseSubprotocol } from '../auth/subprotocol.ts';
import { forEachBounded, SWEEP_CONCURRENCY } from '../bounded-work.ts';
import type { DocHub } from '../documents/doc-hub.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { CredentialRevoked, LevelChanged } from '../events/relay-events.ts';
import { loggablePath } from '../http/request-log.ts';
import type { Counter, Gauge, LabeledCounter, Metrics } from '../metrics.ts';
import { RateLimiter } from '../rate-limiter.ts';
import { DocEndpoint } from './doc-endpoint.ts';
import { DocumentSync } from './document-sync.ts';
import { MuxEndpoint } from './mux-endpoint.ts';
import { SessionTable } from './session-table.ts';
import {
  CLOSE_GOING_AWAY,
  SendBudget,
  type SessionEndpoint,
  type SessionHandler,
  type SessionShared,
  SocketSession,
} from './socket-session.ts';
import { SubscriptionRegistry } from './subscription-registry.ts';
import type { SyncAuthority } from './sync-authority.ts';
import { consoleSyncLog, type SyncLog } from './sync-log.ts';
import { parseSyncPath, type SyncTarget } from './sync-path.ts';
import { completeUpgrade, refuseUpgrade, type UpgradeHandler } from './upgrade.ts';

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
  /** Awareness bytes one socket may hold, over all its documents; over it, 4413. */
  readonly maxAwarenessBytes: number;
  /** Sustained frames per second one socket may send (burst: twice as many); over it, 4429. */
  readonly maxFramesPerSecond: number;
  /** Sustained frames per second one caller (user, or guest address) may send over all its sockets; over it, 4429. */
  readonly maxCallerFramesPerSecond: number;
  /** Sockets one caller (user, or guest address) may hold open; one more is refused with HTTP 429. */
  readonly maxSocketsPerCaller: number;
  /** Bytes queued for all sockets together; past it, sockets with unsent data are closed with 4503. */
  readonly maxTotalBufferedBytes: number;
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
  maxAwarenessBytes: 256 * 1024,
  maxFramesPerSecond: 2000,
  maxCallerFramesPerSecond: 10_000,
  maxSocketsPerCaller: 256,
  maxTotalBufferedBytes: 1024 * 1024 * 1024,
});

/** Options of a {@link SyncServer}; every optional field has a default. */
export interface SyncServerOptions {
  readonly hub: DocHub;
  readonly bus: EventBus;
  readonly authority: SyncAuthority;
  readonly metrics: Metrics;
  readonly limits?: Partial<SyncServerLimits> | undefined;
  /**
   * How often sockets are pinged; one from which nothing was read since the previous ping (not
   * even its pong) is dropped. Default 30 s.
   */
  readonly pingIntervalMs?: number | undefined;
  /** How long close() waits for sockets to finish their close handshake. Default 2 s. */
  readonly closeGraceMs?: number | undefined;
  /** The address a guest's upgrade comes from (trusted proxies); default: the TCP peer. */
  readonly clientAddress?: ((request: IncomingMessage) => string) | undefined;
  readonly log?: SyncLog | undefined;
  /**
   * Several relays: whether this relay's access decisions in memory are current (its
   * `DeliveryLease`). While they are not, content is delivered only after a check against the
   * store. Default: always current (one relay).
   */
  readonly deliveryLease?: { fresh(): boolean } | undefined;
}

/** How long a revoked credential is remembered for sockets still upgrading with it, in ms. */
const REVOKED_MEMORY_MS = 60_000;

/**
 * The relay's WebSocket sync endpoints (docs/wire-protocol.md): it authenticates each upgrade,
 * hands it to the single-document ({@link DocEndpoint}) or multiplexed ({@link MuxEndpoint})
 * adapter, keeps the sessions (heartbeat, revoked credentials, level changes, shutdown), and
 * leaves who-sees-what to the {@link SubscriptionRegistry}. Nothing a client sends can throw
 * out of it: a malformed frame closes that one socket with 4400.
 */
export class SyncServer {
  readonly #hub: DocHub;
  readonly #authority: SyncAuthority;
  readonly #limits: SyncServerLimits;
  readonly #log: SyncLog;
  readonly #closeGraceMs: number;
  readonly #wss: WebSocketServer;
  readonly #registry: SubscriptionRegistry;
  readonly #docEndpoint: DocEndpoint;
  readonly #muxEndpoint: MuxEndpoint;
  /** Sockets by caller: counted from authentication (so upgrades in flight count too), open ones marked. */
  readonly #sessions = new SessionTable();
  readonly #ping: NodeJS.Timeout;
  readonly #unsubscribe: Array<() => void>;
  #nextId = 1;
  /** Credentials revoked lately → when: an upgrade that authenticated just before is refused on accept. */
  readonly #revoked = new Map<string, number>();
  #closed = false;
  #closing: Promise<void> | null = null;
  readonly #connections: Gauge;
  readonly #framesIn: Counter;
  readonly #denials: Counter;
  readonly #opened: LabeledCounter;
  readonly #closedSockets: LabeledCounter;
  readonly #clientAddress: (request: IncomingMessage) => string;
  /** What every session shares (limits, meters, buckets): one object, not copied per socket. */
  readonly #shared: SessionShared;
  /** Each endpoint's handler wrapped with the server's own bookkeeping, shared by its sockets. */
  readonly #handlers: Readonly<Record<SessionEndpoint, SessionHandler>>;
  /** Sockets that authenticated with an expiring token: closed with 4401 at its `exp`. */
  readonly #expiries = new ExpiryTimers<SocketSession>();

  constructor(options: SyncServerOptions) {
    this.#hub = options.hub;
    this.#authority = options.authority;
    this.#limits = { ...DEFAULT_SYNC_LIMITS, ...definedOnly(options.limits ?? {}) };
    const wireLimits: WireLimits = {
      ...DEFAULT_WIRE_LIMITS,
      maxFrameBytes: this.#limits.maxFrameBytes,
      maxStringBytes: this.#limits.maxStringBytes,
    };
    this.#log = options.log ?? consoleSyncLog;
    this.#closeGraceMs = options.closeGraceMs ?? 2000;
    this.#clientAddress = options.clientAddress ?? ((request) => request.socket.remoteAddress ?? 'unknown');
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: this.#limits.maxFrameBytes,
      // A client's credential may ride in the subprotocol (`scopesync, bearer.<…>`): answer
      // `scopesync` only, so the secret is never sent back.
      handleProtocols: (protocols) => chooseSubprotocol(protocols),
    });
    const m = options.metrics;
    this.#connections = m.gauge('scopesync_sync_connections', 'Open sync WebSockets.');
    this.#framesIn = m.counter('scopesync_sync_messages_received_total', 'Sync frames received.');
    this.#shared = {
      limits: this.#limits,
      log: this.#log,
      framesOut: m.counter('scopesync_sync_messages_sent_total', 'Sync frames sent.'),
      callerFrames: new RateLimiter({
        capacity: 2 * this.#limits.maxCallerFramesPerSecond,
        refillPerSecond: this.#limits.maxCallerFramesPerSecond,
      }),
      sendBudget: new SendBudget(this.#limits.maxTotalBufferedBytes),
    };
    this.#opened = m.labeledCounter(
      'scopesync_sync_sockets_opened_total',
      'Sync WebSockets opened, by endpoint (doc: /sync/<name>, mux: /sync).',
      'endpoint',
      ['doc', 'mux'],
    );
    this.#closedSockets = m.labeledCounter(
      'scopesync_sync_sockets_closed_total',
      'Sync WebSockets closed, by endpoint.',
      'endpoint',
      ['doc', 'mux'],
    );
    this.#denials = m.counter(
      'scopesync_sync_denials_total',
      'Sync requests refused: upgrades, subscriptions, writes and revoked subscriptions.',
    );
    const lease = options.deliveryLease;
    this.#registry = new SubscriptionRegistry({
      bus: options.bus,
      authority: this.#authority,
      denials: this.#denials,
      log: this.#log,
      maxAwarenessClients: this.#limits.maxAwarenessClients,
      fresh: lease === undefined ? undefined : () => lease.fresh(),
      refreshCaller: (session) => this.#refreshCaller(session),
      storeChecks:
        lease === undefined
          ? undefined
          : m.counter(
              'scopesync_sync_lease_checks_total',
              'Subscriptions decided again against the store before a delivery, because the delivery lease did not hold.',
            ),
    });
    const documentSync = new DocumentSync({
      hub: this.#hub,
      registry: this.#registry,
      paging: { maxEntriesPerPage: this.#limits.maxEntriesPerPage, maxPageBytes: this.#limits.maxPageBytes },
      denials: this.#denials,
      skippedSteps: m.counter(
        'scopesync_sync_step1_skipped_total',
        'SyncStep1 frames left unanswered because their socket had not read what it was sent.',
      ),
      log: this.#log,
    });
    this.#docEndpoint = new DocEndpoint({
      hub: this.#hub,
      registry: this.#registry,
      documentSync,
      wss: this.#wss,
      wireLimits,
      accepted: (session, ws) => this.#accept(session, ws),
    });
    this.#muxEndpoint = new MuxEndpoint({
      hub: this.#hub,
      registry: this.#registry,
      documentSync,
      wireLimits,
      maxDocsPerConnection: this.#limits.maxDocsPerConnection,
      denials: this.#denials,
    });
    this.#handlers = { doc: this.#served(this.#docEndpoint), mux: this.#served(this.#muxEndpoint) };
    this.#unsubscribe = [
      options.bus.on('credential-revoked', (event) => this.#credentialRevoked(event)),
      options.bus.on('level-changed', (event) => this.#levelChanged(event)),
    ];
    this.#ping = setInterval(() => {
      for (const session of this.#sessions) session.heartbeat();
    }, options.pingIntervalMs ?? 30_000);
    this.#ping.unref();
  }

  /** Open sync sockets. */
  get connections(): number {
    return this.#sessions.size;
  }

  /**
   * Handles an HTTP upgrade for `/sync` or `/sync/<doc name>`. Refuses with a plain HTTP
   * response (400 bad name, 401 invalid key, 403 no read access, 503 shutting down) before
   * the socket opens. Never throws.
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const onError = (error: Error): void => {
      this.#log('warn', 'sync upgrade socket error', { error, url: loggablePath(request.url) });
    };
    socket.on('error', onError);
    let pending: void | Promise<void>;
    try {
      pending = this.#upgrade(request, socket, head);
    } catch (error) {
      pending = Promise.reject(error);
    }
    // Answered in this turn (most upgrades: the key read, the decision and the document at hand).
    if (pending === undefined) {
      socket.off('error', onError);
      return;
    }
    pending
      .catch((error: unknown) => {
        this.#log('error', 'sync upgrade failed', { error, url: loggablePath(request.url) });
        refuseUpgrade(socket, 'Internal', 'internal error');
      })
      .finally(() => socket.off('error', onError));
  }

  /**
   * Checks every open socket against the stores, as if each account and access event had been
   * missed: a revoked credential closes its sockets (4401), a changed level is applied, and every
   * subscription is decided again. The safety net for events lost between relays (after the
   * transport reconnects, and periodically). Resolves when done; never rejects.
   */
  async revalidate(): Promise<void> {
    // A few sockets at a time, each's subscriptions one by one: the sweep runs beside live
    // traffic and must not hold every document's lane while its reads queue for the store.
    const redecide = this.#registry.sweep();
    await forEachBounded([...this.#sessions], SWEEP_CONCURRENCY, async (session) => {
      // A store that cannot answer says nothing about access: the socket reconnects and syncs again.
      if (await this.#refreshCaller(session)) await redecide(session);
    });
  }

  /**
   * Takes the session's caller again from the stores: a revoked credential closes its sockets
   * (4401), a changed level is applied. Resolves with whether the session is still open; a
   * failure closes it (fail closed). Never rejects.
   */
  async #refreshCaller(session: SocketSession): Promise<boolean> {
    try {
      if (session.credential !== null && this.#authority.reauthenticate) {
        const caller = await this.#authority.reauthenticate(session.credential);
        if (caller === null) {
          this.#credentialRevoked({ type: 'credential-revoked', credential: session.credential });
          return false;
        }
        session.setCaller(caller);
      }
      return !session.ended;
    } catch (error) {
      this.#log('error', 're-validating a socket failed; closing it', session.context({ error }));
      session.close(4503, 'access could not be verified');
      return false;
    }
  }

  /** Stops accepting, closes every socket with 1001, and flushes the hub's pending writes. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#ping);
    this.#expiries.clear();
    for (const off of this.#unsubscribe.splice(0)) off();
    const sessions = [...this.#sessions];
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#closeGraceMs);
      timer.unref();
    });
    await Promise.race([Promise.all(sessions.map((s) => s.goAway())), grace]);
    clearTimeout(timer);
    for (const session of sessions) session.terminate();
    await Promise.allSettled(sessions.map((s) => s.idle()));
    this.#registry.close();
    await this.#hub.flush();
    this.#wss.close();
  }

  /** Parses, authenticates, admits and opens an upgrade; a promise only when some step had to wait. */
  #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void | Promise<void> {
    if (this.#closed) return refuseUpgrade(socket, 'Unavailable', 'the relay is shutting down');
    let target: SyncTarget | null;
    try {
      target = parseSyncPath(request.url);
    } catch (error) {
      return refuseUpgrade(socket, 'BadRequest', isSyncError(error) ? error.message : 'bad request');
    }
    if (target === null) return refuseUpgrade(socket, 'NotFound', 'no such sync endpoint');
    let now: ReturnType<NonNullable<SyncAuthority['authenticateNow']>>;
    try {
      // In this turn when the authority can (an API key on SQLite): no promise per layer.
      now = this.#authority.authenticateNow?.(request);
    } catch (error) {
      return this.#refuseAuthentication(socket, error);
    }
    if (now === undefined) return this.#upgradeLater(request, socket, head, target);
    return this.#admit(request, socket, head, target, now.caller, now.credential);
  }

  /** {@link #upgrade} with an authority that authenticates asynchronously. */
  async #upgradeLater(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    target: SyncTarget,
  ): Promise<void> {
    let caller: Caller;
    try {
      caller = await this.#authority.authenticate(request);
    } catch (error) {
      return this.#refuseAuthentication(socket, error);
    }
    return this.#admit(request, socket, head, target, caller, undefined);
  }

  /** Refuses an upgrade whose credential was refused (401); rethrows anything else. */
  #refuseAuthentication(socket: Duplex, error: unknown): void {
    if (!isSyncError(error)) throw error;
    this.#denials.inc();
    refuseUpgrade(socket, error.kind, error.message);
  }

  /**
   * Counts an authenticated upgrade against its caller's sockets and opens it. `credential`: the
   * credential's id when authentication gave it; undefined: ask `credentialOf`.
   */
  #admit(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    target: SyncTarget,
    caller: Caller,
    credential: string | null | undefined,
  ): void | Promise<void> {
    if (this.#closed) return refuseUpgrade(socket, 'Unavailable', 'the relay is shutting down');
    // A user's key is their id as the caller holds it (`user_` + hex never contains `:`), not a
    // string made per socket; a guest's is its address.
    const callerKey = caller.kind === 'user' ? caller.userId : `ip:${this.#clientAddress(request)}`;
    if (this.#sessions.count(callerKey) >= this.#limits.maxSocketsPerCaller) {
      this.#denials.inc();
      return refuseUpgrade(socket, 'RateLimited', 'too many open sockets for this caller');
    }
    const session = this.#newSession(
      target.kind,
      caller,
      credential === undefined ? (this.#authority.credentialOf?.(request) ?? null) : credential,
      // The document's one name string when a room holds it, not this request's fresh parse of it.
      target.kind === 'doc' ? this.#registry.sharedName(target.address.name) : undefined,
      callerKey,
    );
    this.#sessions.add(session);
    let opening: void | Promise<void>;
    try {
      opening =
        target.kind === 'doc'
          ? this.#docEndpoint.open(request, socket, head, session, target.address)
          : completeUpgrade(this.#wss, request, socket, head, session, this.#muxUpgraded);
    } catch (error) {
      this.#unlist(session);
      throw error;
    }
    if (opening === undefined) return this.#unlist(session);
    return opening.finally(() => this.#unlist(session));
  }

  /** Refused or abandoned before it opened: the session holds no place any more. */
  #unlist(session: SocketSession): void {
    if (!session.listed) this.#sessions.remove(session);
  }

  /** What a completed handshake of `/sync` does: one object for every socket. */
  readonly #muxUpgraded: UpgradeHandler<SocketSession> = {
    accept: (session, ws) => {
      this.#muxEndpoint.open(session);
      this.#accept(session, ws);
    },
    abandon: () => undefined,
  };

  #newSession(
    endpoint: SessionEndpoint,
    caller: Caller,
    credential: string | null,
    doc: string | undefined,
    callerKey: string,
  ): SocketSession {
    return new SocketSession({
      id: this.#nextId++,
      endpoint,
      caller,
      credential,
      doc,
      callerKey,
      shared: this.#shared,
    });
  }

  /**
   * `endpoint` as its sockets' handler, with the server's part: frames counted, and a closed
   * socket's subscriptions, place and timer given back. Made once per endpoint, not per socket.
   */
  #served(endpoint: SessionHandler): SessionHandler {
    return {
      frame: (session, bytes) => {
        this.#framesIn.inc();
        return endpoint.frame(session, bytes);
      },
      closed: (session) => {
        endpoint.closed(session);
        this.#closedSession(session);
      },
    };
  }

  #closedSession(session: SocketSession): void {
    this.#expiries.disarm(session);
    this.#registry.endSession(session);
    if (this.#sessions.remove(session)) this.#connections.dec();
    this.#closedSockets.labels(session.endpoint).inc();
    const { framesIn, framesOut, ms, code } = session.stats();
    this.#log(
      'info',
      'socket closed',
      session.context({ code, ms, frames_in: framesIn, frames_out: framesOut }),
    );
  }

  /** Registers an opened socket; false (and the socket closed) when it must not live. */
  #accept(session: SocketSession, ws: WebSocket): boolean {
    this.#sessions.open(session);
    this.#connections.inc();
    this.#opened.labels(session.endpoint).inc();
    this.#log('info', 'socket opened', session.context({}));
    session.attach(ws, this.#handlers[session.endpoint]);
    if (this.#closed) {
      session.close(CLOSE_GOING_AWAY, 'relay shutting down');
      return false;
    }
    if (session.credential !== null && this.#revoked.has(session.credential)) {
      // Revoked while this socket was upgrading: the event could not see it yet.
      session.revoke('API key revoked');
      return false;
    }
    const expiresAt =
      session.credential === null ? null : (this.#authority.expiryOf?.(session.credential) ?? null);
    if (expiresAt !== null) this.#expiries.arm(session, expiresAt, () => this.#expire(session));
    return true;
  }

  /** Its token expired while the socket was open: it ends like a revoked one (4401). */
  #expire(session: SocketSession): void {
    this.#denials.inc();
    session.revoke('token expired');
    this.#registry.endSession(session);
  }

  /** Closes every socket that authenticated with the revoked credential (4401), at once. */
  #credentialRevoked(event: CredentialRevoked): void {
    const now = Date.now();
    for (const [old, at] of this.#revoked) {
      if (now - at < REVOKED_MEMORY_MS) break; // insertion order is time order
      this.#revoked.delete(old);
    }
    this.#revoked.delete(event.credential);
    this.#revoked.set(event.credential, now);
    for (const session of this.#sessions) {
      if (session.credential !== event.credential) continue;
      this.#denials.inc();
      // End the subscriptions now, not when the close handshake completes: frames already
      // received from this socket must not read or write anything.
      session.revoke('API key revoked');
      this.#registry.endSession(session);
    }
  }

  /** Applies a user's new level to their sockets and decides each of their subscriptions again. */
  async #levelChanged(event: LevelChanged): Promise<void> {
    const affected: SocketSession[] = [];
    // A user's sockets are those under their id (see `callerKey`); the check below stays.
    for (const session of this.#sessions.ofCaller(event.userId)) {
      const caller = session.caller;
      if (caller.kind !== 'user' || caller.userId !== event.userId) continue;
      session.setCaller({ ...caller, level: event.level });
      affected.push(session);
    }
    await Promise.all(affected.map((session) => this.#registry.redecideSession(session)));
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
