import {
  type DocAccess,
  decodeMuxFrame,
  type ErrorKind,
  encodeMuxFrame,
  type Message,
  parseDocName,
} from '@scopesync/core';
import * as Y from 'yjs';
import type { FetchFunction } from '../src/http-api.ts';
import { DATA_MAP } from '../src/user-data.ts';

/**
 * An in-process stand-in for the relay, for the client's unit tests: the multiplexed /sync
 * protocol over fake sockets and the few HTTP routes the client calls, with knobs to take it
 * down, change access and refuse writes. The real relay is tested against in test/.
 */
export class FakeRelay {
  /** Every frame any client sent, decoded, with the user who sent it. */
  readonly received: { user: string; docName: string; message: Message }[] = [];
  /** Every raw frame any client sent. */
  readonly rawFrames: Uint8Array[] = [];
  /** Socket connection attempts (opened or not). */
  connectAttempts = 0;
  readonly docs = new Map<string, Y.Doc>();
  readonly encLogs = new Map<string, { seq: number; envelope: Uint8Array }[]>();
  readonly #heads = new Map<string, number>();
  readonly #keys = new Map<string, { userId: string; level: number }>();
  readonly #sockets = new Set<FakeSocket>();
  /** Access overrides per `${userId} ${docName}`; default read-write. */
  readonly #access = new Map<string, DocAccess>();
  /** Error kinds to answer the next tracked write of a doc with. */
  readonly #refuse = new Map<string, ErrorKind>();
  /** `${userId} ${docName}` the relay answers `waiting` (absent or hidden): subscriptions wait. */
  readonly #hidden = new Set<string>();
  readonly #deleted = new Set<string>();
  #down = false;
  #userCounter = 0;
  /** How the relay refuses a bad key on the socket: close 4401 after open, or refuse the upgrade. */
  authFailure: 'close-4401' | 'refuse-upgrade' = 'close-4401';

  /** The WebSocket class clients of this relay use. */
  readonly WebSocket: new (
    url: string,
  ) => object;

  /** The fetch function clients of this relay use. */
  readonly fetch: FetchFunction;

  constructor() {
    const relay = this;
    this.WebSocket = class {
      constructor(url: string, protocols?: string[]) {
        // biome-ignore lint/correctness/noConstructorReturn: a fake standing in for a class.
        return relay.#connect(url, protocols);
      }
    };
    this.fetch = (input, init) => this.#fetch(input, init);
  }

  /** Adds a user with an API key; returns the key. */
  addUser(userId: string, level = 1): string {
    const key = `key-${userId}`;
    this.#keys.set(key, { userId, level });
    return key;
  }

  /** Takes the relay down: every socket drops (1006), new ones and HTTP requests fail. */
  stop(): void {
    this.#down = true;
    for (const socket of [...this.#sockets]) socket.drop(1006, '');
  }

  /** Brings the relay back. */
  start(): void {
    this.#down = false;
  }

  /** Revokes a key: open sockets of that key close with 4401. */
  revokeKey(key: string): void {
    const user = this.#keys.get(key);
    this.#keys.delete(key);
    for (const socket of [...this.#sockets])
      if (socket.userId === user?.userId) socket.drop(4401, 'key revoked');
  }

  /** Sets a user's access to a doc; live subscriptions are told at once (access none ends them). */
  setAccess(userId: string, docName: string, access: DocAccess): void {
    this.#access.set(`${userId} ${docName}`, access);
    for (const socket of this.#sockets) {
      if (socket.userId !== userId || !socket.subscriptions.has(docName)) continue;
      socket.push(docName, { type: 'permission', access, reason: access === 'none' ? 'share revoked' : '' });
      if (access === 'none') socket.subscriptions.delete(docName);
    }
  }

  /** Makes `docName` absent (or hidden) for `userId`: a subscribe answers `waiting` and waits. */
  hide(userId: string, docName: string): void {
    this.#hidden.add(`${userId} ${docName}`);
  }

  /**
   * Makes a hidden doc readable for `userId` with `access`: waiting subscriptions start (permission,
   * the relay's SyncStep1, and the answer to the SyncStep1 the client sent while waiting).
   */
  reveal(userId: string, docName: string, access: DocAccess): void {
    this.#hidden.delete(`${userId} ${docName}`);
    this.#access.set(`${userId} ${docName}`, access);
    for (const socket of this.#sockets) {
      if (socket.userId !== userId || !socket.waiting.has(docName)) continue;
      const stateVector = socket.waiting.get(docName);
      socket.waiting.delete(docName);
      socket.subscriptions.add(docName);
      socket.push(docName, { type: 'permission', access, reason: '' });
      socket.push(docName, { type: 'sync-step1', stateVector: Y.encodeStateVector(this.doc(docName)) });
      if (stateVector) {
        socket.push(docName, {
          type: 'sync-step2',
          update: Y.encodeStateAsUpdate(this.doc(docName), stateVector),
        });
      }
    }
  }

  /** Makes the relay refuse the next tracked write or encrypted append to `docName` with `kind`. */
  refuseNextWrite(docName: string, kind: ErrorKind): void {
    this.#refuse.set(docName, kind);
  }

  /** The relay's copy of a plaintext doc. */
  doc(name: string): Y.Doc {
    let doc = this.docs.get(name);
    if (!doc) {
      doc = new Y.Doc();
      this.docs.set(name, doc);
    }
    return doc;
  }

  /** Number of open sockets. */
  get openSockets(): number {
    return this.#sockets.size;
  }

  #accessOf(userId: string | undefined, docName: string): DocAccess {
    if (userId === undefined) return 'read';
    return this.#access.get(`${userId} ${docName}`) ?? 'read-write';
  }

  #connect(url: string, protocols: string[] = []): FakeSocket {
    this.connectAttempts++;
    // The credential as the real relay reads it: the `bearer.` subprotocol, else `?key=`.
    const offered = protocols.find((p) => p.startsWith('bearer.'))?.slice('bearer.'.length);
    const key = offered ?? new URL(url).searchParams.get('key') ?? undefined;
    const user = key === undefined ? undefined : this.#keys.get(key);
    const socket = new FakeSocket(this, user?.userId);
    setTimeout(() => {
      if (this.#down) return socket.drop(1006, '', false);
      if (key !== undefined && !user) {
        if (this.authFailure === 'refuse-upgrade') return socket.drop(1006, '', false);
        socket.open();
        return socket.drop(4401, 'invalid API key');
      }
      this.#sockets.add(socket);
      socket.open();
    }, 0);
    return socket;
  }

  /** @internal */
  forget(socket: FakeSocket): void {
    this.#sockets.delete(socket);
  }

  /** @internal A frame from a client. */
  handle(socket: FakeSocket, bytes: Uint8Array): void {
    this.rawFrames.push(bytes);
    const { docName, message } = decodeMuxFrame(bytes);
    this.received.push({ user: socket.userId ?? 'guest', docName, message });
    const access = this.#accessOf(socket.userId, docName);
    switch (message.type) {
      case 'subscribe': {
        if (this.#hidden.has(`${socket.userId} ${docName}`)) {
          socket.push(docName, { type: 'permission', access: 'waiting', reason: '' });
          socket.waiting.set(docName, null);
          return;
        }
        socket.push(docName, { type: 'permission', access, reason: access === 'none' ? 'no access' : '' });
        if (access === 'none') return;
        socket.subscriptions.add(docName);
        if (message.mode === 'plaintext') {
          socket.push(docName, { type: 'sync-step1', stateVector: Y.encodeStateVector(this.doc(docName)) });
        }
        return;
      }
      case 'unsubscribe':
        socket.subscriptions.delete(docName);
        socket.waiting.delete(docName);
        return;
      case 'sync-step1':
        if (socket.waiting.has(docName)) {
          socket.waiting.set(docName, message.stateVector);
          return;
        }
        socket.push(docName, {
          type: 'sync-step2',
          update: Y.encodeStateAsUpdate(this.doc(docName), message.stateVector),
        });
        return;
      case 'sync-step2':
      case 'sync-update':
        if (access !== 'read-write') {
          socket.push(docName, { type: 'permission-denied', reason: 'read-only' });
          return;
        }
        this.#applyAndBroadcast(socket, docName, message.update);
        return;
      case 'tracked-update': {
        const refusal = this.#refuse.get(docName) ?? (access === 'read-write' ? undefined : 'Forbidden');
        if (refusal) {
          this.#refuse.delete(docName);
          socket.push(docName, {
            type: 'error',
            ref: message.ref,
            kind: refusal,
            message: `refused: ${refusal}`,
          });
          return;
        }
        this.#applyAndBroadcast(socket, docName, message.update);
        socket.push(docName, { type: 'ack', ref: message.ref, seq: this.#nextSeq(docName) });
        return;
      }
      case 'enc-append': {
        const refusal = this.#refuse.get(docName) ?? (access === 'read-write' ? undefined : 'Forbidden');
        if (refusal) {
          this.#refuse.delete(docName);
          socket.push(docName, {
            type: 'error',
            ref: message.ref,
            kind: refusal,
            message: `refused: ${refusal}`,
          });
          return;
        }
        const seq = this.#nextSeq(docName);
        const log = this.#encLog(docName);
        log.push({ seq, envelope: message.envelope });
        socket.push(docName, { type: 'ack', ref: message.ref, seq });
        for (const other of this.#sockets) {
          if (other.subscriptions.has(docName)) {
            other.push(docName, {
              type: 'enc-entries',
              headSeq: seq,
              entries: [{ seq, envelope: message.envelope }],
            });
          }
        }
        return;
      }
      case 'enc-fetch': {
        const log = this.#encLog(docName);
        socket.push(docName, {
          type: 'enc-entries',
          headSeq: this.#heads.get(docName) ?? 0,
          entries: log.filter((e) => e.seq > message.sinceSeq),
        });
        return;
      }
      case 'enc-snapshot': {
        const log = this.#encLog(docName);
        if (!log.some((e) => e.seq === message.throughSeq)) {
          socket.push(docName, {
            type: 'error',
            ref: message.ref,
            kind: 'Conflict',
            message: 'no such entry',
          });
          return;
        }
        this.encLogs.set(docName, [
          { seq: message.throughSeq, envelope: message.snapshot },
          ...log.filter((e) => e.seq > message.throughSeq),
        ]);
        socket.push(docName, { type: 'ack', ref: message.ref, seq: message.throughSeq });
        return;
      }
      default:
        return;
    }
  }

  #applyAndBroadcast(from: FakeSocket, docName: string, update: Uint8Array): void {
    Y.applyUpdate(this.doc(docName), update);
    this.#deleted.delete(docName);
    for (const socket of this.#sockets) {
      if (socket !== from && socket.subscriptions.has(docName))
        socket.push(docName, { type: 'sync-update', update });
    }
  }

  #nextSeq(docName: string): number {
    const seq = (this.#heads.get(docName) ?? 0) + 1;
    this.#heads.set(docName, seq);
    return seq;
  }

  #encLog(docName: string): { seq: number; envelope: Uint8Array }[] {
    let log = this.encLogs.get(docName);
    if (!log) {
      log = [];
      this.encLogs.set(docName, log);
    }
    return log;
  }

  async #fetch(input: string, init: RequestInit = {}): Promise<Response> {
    await Promise.resolve();
    if (this.#down) throw new TypeError('fetch failed: connection refused');
    const url = new URL(input);
    const method = init.method ?? 'GET';
    const headers = new Headers(init.headers);
    const user = this.#keys.get(headers.get('x-api-key') ?? '');
    const json = (status: number, body: unknown): Response =>
      new Response(status === 204 ? null : JSON.stringify(body), {
        status,
        headers: { 'content-type': 'application/json' },
      });
    const parts = url.pathname.split('/').slice(1).map(decodeURIComponent);
    if (method === 'POST' && url.pathname === '/keys/challenge') {
      // Proofs are not checked here (the real relay's tests do that); a device must still make one.
      return json(200, {
        challenge: 'c'.repeat(43),
        expires_at: Date.now() + 60_000,
        relay_id: 'fake-relay',
      });
    }
    if (method === 'POST' && url.pathname === '/keys') {
      const body = JSON.parse(String(init.body)) as { device_name: string };
      const userId = `user_${(++this.#userCounter).toString(16).padStart(16, '0')}`;
      const key = `key-${body.device_name}-${userId}`;
      this.#keys.set(key, { userId, level: 1 });
      return json(200, { key, user_id: userId });
    }
    if (url.pathname === '/keys/validate') {
      if (!user) return json(401, { error: 'Unauthorized', message: 'invalid API key' });
      return json(200, { valid: true, user_id: user.userId, level: user.level });
    }
    if (parts[0] === 'userdata' && parts.length === 4) {
      const [, ns, scope, key] = parts as [string, string, string, string];
      const name = parseDocName(`${scope}/${ns}/${key}`).name;
      if (method === 'DELETE') {
        if (!this.docs.has(name) || this.#deleted.has(name))
          return json(404, { error: 'NotFound', message: 'absent' });
        this.docs.delete(name);
        this.#deleted.add(name);
        return json(204, null);
      }
      if (method === 'GET') {
        const doc = this.docs.get(name);
        if (!doc || doc.getMap(DATA_MAP).size === 0)
          return json(404, { error: 'NotFound', message: 'absent' });
        return json(200, { value: doc.getMap(DATA_MAP).toJSON(), version: 1, owner: ns, read: 2, write: 1 });
      }
    }
    if (parts[0] === 'userdata' && parts.length === 3 && method === 'GET') {
      const [, ns, scope] = parts as [string, string, string];
      const prefix = `${scope}/${ns}/${url.searchParams.get('prefix') ?? ''}`;
      const keys = [...this.docs.keys()]
        .filter((d) => d.startsWith(prefix))
        .map((d) => d.slice(`${scope}/${ns}/`.length));
      return json(200, { keys });
    }
    return json(404, { error: 'NotFound', message: `no route ${method} ${url.pathname}` });
  }
}

/** A fake WebSocket connected to a {@link FakeRelay}. */
class FakeSocket {
  binaryType = 'blob';
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly subscriptions = new Set<string>();
  /** Waiting subscriptions, with the SyncStep1 the client sent meanwhile. */
  readonly waiting = new Map<string, Uint8Array | null>();
  readonly #relay: FakeRelay;
  readonly userId: string | undefined;

  constructor(relay: FakeRelay, userId: string | undefined) {
    this.#relay = relay;
    this.userId = userId;
  }

  open(): void {
    if (this.readyState !== 0) return;
    this.readyState = 1;
    this.onopen?.({});
  }

  send(data: Uint8Array): void {
    if (this.readyState !== 1) throw new Error('not open');
    const copy = data.slice();
    // Network order: frames arrive in the order they were sent, after the sender's turn.
    queueMicrotask(() => {
      if (this.readyState === 1) this.#relay.handle(this, copy);
    });
  }

  /** The relay sends a frame to the client. */
  push(docName: string, message: Message): void {
    const bytes = encodeMuxFrame(docName, message);
    queueMicrotask(() => {
      if (this.readyState === 1)
        this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
    });
  }

  close(code = 1000, reason = ''): void {
    this.drop(code, reason);
  }

  /** Closes from either side. */
  drop(code: number, reason: string, wasOpen = true): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.#relay.forget(this);
    void wasOpen;
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }
}
