import { randomUUID } from 'node:crypto';
import {
  type DocAccess,
  decodeDocFrame,
  decodeMuxFrame,
  encodeDocFrame,
  encodeMuxFrame,
  type Message,
  type MessageOfType,
  type ReadFlag,
  type WriteFlag,
} from '@scopesync/core';
import { afterEach } from 'vitest';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import type { TestRelay } from './start-test-relay.ts';

/** Where a test socket connects: a relay in this process or in a child. */
export type RelayEndpoint = Pick<TestRelay, 'wsUrl' | 'api'>;

// Sockets that speak the sync protocols at frame level and remember everything they received,
// for tests that must show a frame never arrived. "Never" is bounded by a fence: a write made
// after the operation under test that the socket must receive, so anything the relay sent
// before it has arrived by then.

/** How long a test waits for something that must happen before it fails. A bound, not an assertion. */
export const WAIT_MS = 5000;

/** Whether `bytes` hold `text` (UTF-8). Yjs v1 updates carry strings as UTF-8, so this finds a value in any sync frame. */
export function carries(bytes: Uint8Array, text: string): boolean {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).includes(text);
}

/** A Yjs update (v1) setting `data[field] = value`, as a userData write makes it. */
export function update(field: string, value: string): Uint8Array {
  const doc = new Y.Doc();
  doc.getMap('data').set(field, value);
  return Y.encodeStateAsUpdate(doc);
}

/** The state vector of an empty document: a SyncStep1 that asks for everything. */
export const EMPTY_STATE_VECTOR = Y.encodeStateVector(new Y.Doc());

/** Whether a permission grants reading: the protocol may add values for "waiting"; those are not access. */
export const grantsRead = (access: DocAccess | undefined): boolean =>
  access === 'read' || access === 'read-write';

/** One frame a multiplexed socket received. */
export interface ReceivedFrame {
  readonly doc: string;
  readonly message: Message;
  readonly bytes: Uint8Array;
}

/**
 * Resolves when `check` returns a value, rejects when it throws or after {@link WAIT_MS} with
 * `describe()`'s text. `subscribe` registers a wake-up and returns its removal.
 */
function waitUntil<T>(
  check: () => T | undefined,
  subscribe: (wake: () => void) => () => void,
  describe: () => string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let stop = (): void => undefined;
    const timer = setTimeout(() => {
      stop();
      reject(new Error(describe()));
    }, WAIT_MS);
    const poll = (): void => {
      let found: T | undefined;
      try {
        found = check();
      } catch (error) {
        clearTimeout(timer);
        stop();
        reject(error);
        return;
      }
      if (found === undefined) return;
      clearTimeout(timer);
      stop();
      resolve(found);
    };
    stop = subscribe(poll);
    poll();
  });
}

/** A client of the multiplexed endpoint `/sync` that records every frame. */
export class MuxSocket {
  readonly ws: WebSocket;
  readonly frames: ReceivedFrame[] = [];
  /** How the socket closed, once it did. */
  closedWith: { code: number; reason: string } | null = null;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #wakers = new Set<() => void>();
  readonly #relay: RelayEndpoint;
  #fenceDoc: string | null = null;
  #nextRef = 1;

  private constructor(relay: RelayEndpoint, ws: WebSocket) {
    this.#relay = relay;
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      const bytes = new Uint8Array(data);
      const { docName, message } = decodeMuxFrame(bytes);
      this.frames.push({ doc: docName, message, bytes });
      this.#wake();
    });
    ws.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closedWith = { code, reason: reason.toString() };
        this.#wake();
        resolve(this.closedWith);
      });
    });
  }

  /** Opens `/sync` with `key` (a guest without one); rejects if the upgrade is refused. */
  static async open(relay: RelayEndpoint, key?: string): Promise<MuxSocket> {
    const query = key === undefined ? '' : `?key=${encodeURIComponent(key)}`;
    const ws = new WebSocket(`${relay.wsUrl}/sync${query}`);
    const socket = new MuxSocket(relay, ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`/sync refused with ${res.statusCode}`)),
      );
    });
    return socket;
  }

  #wake(): void {
    for (const wake of [...this.#wakers]) wake();
  }

  send(doc: string, message: Message): void {
    this.ws.send(encodeMuxFrame(doc, message));
  }

  /** A fresh request reference for a tracked update. */
  ref(): number {
    return this.#nextRef++;
  }

  /** Resolves with the first frame from index `from` on that matches; fails after {@link WAIT_MS} or when the socket closes. */
  waitFor(what: string, match: (frame: ReceivedFrame) => boolean, from = 0): Promise<ReceivedFrame> {
    return waitUntil(
      () => {
        const found = this.frames.slice(from).find(match);
        if (found) return found;
        if (this.closedWith) throw new Error(`socket closed (${this.closedWith.code}) before ${what}`);
        return undefined;
      },
      (wake) => {
        this.#wakers.add(wake);
        return () => this.#wakers.delete(wake);
      },
      () =>
        `no ${what} within ${WAIT_MS} ms; received ${this.frames
          .map(
            (f) =>
              `${f.doc}:${f.message.type}${f.message.type === 'permission' ? `=${f.message.access}` : ''}`,
          )
          .join(', ')}`,
    );
  }

  /** Subscribes to `doc` (plaintext) and resolves with the relay's first permission answer. */
  async subscribe(
    doc: string,
    flags: { read?: ReadFlag; write?: WriteFlag } = {},
  ): Promise<MessageOfType<'permission'>> {
    const from = this.frames.length;
    this.send(doc, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0, ...flags });
    const frame = await this.waitFor(
      `permission for ${doc}`,
      (f) => f.doc === doc && f.message.type === 'permission',
      from,
    );
    return frame.message as MessageOfType<'permission'>;
  }

  /** Sends a tracked update and resolves with its answer (ack or error). */
  async write(doc: string, bytes: Uint8Array): Promise<MessageOfType<'ack'> | MessageOfType<'error'>> {
    const ref = this.ref();
    this.send(doc, { type: 'tracked-update', ref, update: bytes });
    const frame = await this.waitFor(
      `answer to write ${ref} of ${doc}`,
      (f) => (f.message.type === 'ack' || f.message.type === 'error') && f.message.ref === ref,
    );
    return frame.message as MessageOfType<'ack'> | MessageOfType<'error'>;
  }

  /** The last permission received about `doc`, if any. */
  lastPermission(doc: string): MessageOfType<'permission'> | undefined {
    for (let i = this.frames.length - 1; i >= 0; i--) {
      const f = this.frames[i] as ReceivedFrame;
      if (f.doc === doc && f.message.type === 'permission') return f.message;
    }
    return undefined;
  }

  /** Whether any frame received so far carries `text`. */
  saw(text: string): boolean {
    return this.frames.some((f) => carries(f.bytes, text));
  }

  /** The frames that carry `text` (for a readable failure). */
  framesCarrying(text: string): string[] {
    return this.frames.filter((f) => carries(f.bytes, text)).map((f) => `${f.doc}:${f.message.type}`);
  }

  /**
   * Subscribes to a PUBLIC_RW document of its own, used by {@link fence}. Call it before the
   * operation under test.
   */
  async prepareFence(): Promise<void> {
    if (this.#fenceDoc !== null) return;
    const key = `fence-${randomUUID()}`;
    const created = await this.#relay.api('POST', `/userdata/_/PUBLIC_RW/${key}`, { body: { value: {} } });
    if (created.status !== 200) throw new Error(`creating the fence document answered ${created.status}`);
    const doc = `PUBLIC_RW/_/${key}`;
    const permission = await this.subscribe(doc);
    if (!grantsRead(permission.access))
      throw new Error(`the fence document was refused: ${permission.reason}`);
    this.#fenceDoc = doc;
  }

  /**
   * Resolves once everything the relay sent this socket before now has arrived: a new value
   * is written to the fence document over HTTP, then this socket asks for the fence document
   * and waits for the answer that holds it. The relay sends on one socket in order and handles
   * one socket's frames in order, so a frame that was sent (or answered) before has arrived.
   */
  async fence(): Promise<void> {
    const doc = this.#fenceDoc;
    if (doc === null) throw new Error('call prepareFence() before the operation under test');
    const token = `token-${randomUUID()}`;
    const written = await this.#relay.api('POST', `/userdata/_/PUBLIC_RW/${doc.split('/')[2]}`, {
      body: { value: { token } },
    });
    if (written.status !== 200) throw new Error(`writing the fence answered ${written.status}`);
    const from = this.frames.length;
    this.send(doc, { type: 'sync-step1', stateVector: EMPTY_STATE_VECTOR });
    await this.waitFor(
      'the fence',
      (f) => f.doc === doc && f.message.type === 'sync-step2' && carries(f.bytes, token),
      from,
    );
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}

/** A stock y-websocket client of the single-document endpoint (BroadcastChannel off) and what happened to it. */
export class DocClient {
  readonly doc = new Y.Doc();
  readonly provider: WebsocketProvider;
  /** Close codes of its connections, in order. */
  readonly closes: number[] = [];
  /** Refused or failed connection attempts. */
  errors = 0;
  /** Every frame its sockets received, decoded. */
  readonly frames: { readonly message: Message; readonly bytes: Uint8Array }[] = [];
  readonly #wakers = new Set<() => void>();

  constructor(relay: RelayEndpoint, docName: string, key: string) {
    this.provider = new WebsocketProvider(`${relay.wsUrl}/sync`, docName, this.doc, {
      WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
      params: { key },
      disableBc: true,
    });
    const wake = (): void => {
      for (const w of [...this.#wakers]) w();
    };
    this.provider.on('connection-close', (event) => {
      this.closes.push(event?.code ?? 0);
      wake();
    });
    this.provider.on('connection-error', () => {
      this.errors += 1;
      wake();
    });
    this.provider.on('sync', wake);
    this.provider.on('status', ({ status }) => {
      const ws = this.provider.ws;
      if (status !== 'connected' || !ws) return;
      ws.addEventListener('message', (event: MessageEvent) => {
        const bytes = new Uint8Array(event.data as ArrayBuffer);
        this.frames.push({ message: decodeDocFrame(bytes), bytes });
        wake();
      });
    });
    this.doc.on('update', wake);
  }

  /**
   * Resolves once the relay handled every frame this client sent so far: it sends a SyncStep1
   * of its own and waits for the answer (the relay handles one socket's frames in order).
   */
  async settle(): Promise<void> {
    const ws = this.provider.ws;
    if (!ws || !this.provider.wsconnected) throw new Error('settle() needs an open connection');
    const from = this.frames.length;
    ws.send(encodeDocFrame({ type: 'sync-step1', stateVector: EMPTY_STATE_VECTOR }));
    await this.until('the answer to a SyncStep1', () =>
      this.frames.slice(from).some((f) => f.message.type === 'sync-step2'),
    );
  }

  /** Whether the document, or any frame received, holds `text`. */
  holds(text: string): boolean {
    return carries(Y.encodeStateAsUpdate(this.doc), text) || this.frames.some((f) => carries(f.bytes, text));
  }

  /** Resolves when `check` holds; fails after {@link WAIT_MS} with `what`. */
  until(what: string, check: () => boolean): Promise<void> {
    return waitUntil(
      () => (check() ? true : undefined),
      (wake) => {
        this.#wakers.add(wake);
        return () => this.#wakers.delete(wake);
      },
      () =>
        `no ${what} within ${WAIT_MS} ms (closes: ${this.closes.join(', ') || 'none'}, errors: ${this.errors}, synced: ${this.provider.synced})`,
    ).then(() => undefined);
  }

  /** Resolves once the provider synced with the relay. */
  synced(): Promise<void> {
    return this.until('sync', () => this.provider.synced);
  }

  /** Resolves once the relay closed the socket with a 44xx code (access ended), or fails. */
  closedByRelay(): Promise<number> {
    return this.until('close with a 44xx code', () => this.closes.some((c) => c >= 4400 && c < 4500)).then(
      () => this.closes.find((c) => c >= 4400 && c < 4500) as number,
    );
  }

  destroy(): void {
    this.provider.destroy();
    this.doc.destroy();
  }
}

/**
 * A bare client of the single-document endpoint that sends nothing unless told to (a stock
 * client answers the relay's SyncStep1 with a write of its own), recording what it receives.
 */
export class RawDocSocket {
  readonly ws: WebSocket;
  readonly frames: Uint8Array[] = [];
  closedWith: { code: number; reason: string } | null = null;
  readonly #wakers = new Set<() => void>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      this.frames.push(new Uint8Array(data));
      this.#wake();
    });
    ws.on('error', () => undefined);
    ws.on('close', (code, reason) => {
      this.closedWith = { code, reason: reason.toString() };
      this.#wake();
    });
  }

  /** Opens `/sync/<doc>` with `key`; rejects with the status if the upgrade is refused. */
  static async open(relay: RelayEndpoint, doc: string, key: string): Promise<RawDocSocket> {
    const ws = new WebSocket(`${relay.wsUrl}/sync/${encodeURIComponent(doc)}?key=${encodeURIComponent(key)}`);
    const socket = new RawDocSocket(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
    });
    return socket;
  }

  #wake(): void {
    for (const wake of [...this.#wakers]) wake();
  }

  /** Resolves with the close code once the relay closed the socket; fails after {@link WAIT_MS}. */
  closedByRelay(): Promise<number> {
    return waitUntil(
      () => this.closedWith?.code,
      (wake) => {
        this.#wakers.add(wake);
        return () => this.#wakers.delete(wake);
      },
      () => `the relay did not close the socket within ${WAIT_MS} ms (${this.frames.length} frames received)`,
    );
  }

  /** Whether any frame received carries `text`. */
  saw(text: string): boolean {
    return this.frames.some((f) => carries(f, text));
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}

/** The sockets of one test file: opened through it, closed after each test. */
export interface SyncSockets {
  /** A multiplexed socket of `key` (its fence prepared when `fence`). */
  mux(key: string, options?: { readonly fence?: boolean }): Promise<MuxSocket>;
  /** A stock y-websocket client of `name` for `key`. */
  single(name: string, key: string): DocClient;
}

/** Sockets to `relay` that are closed after every test of the file that calls this. */
export function useSyncSockets(relay: RelayEndpoint): SyncSockets {
  const sockets: MuxSocket[] = [];
  const clients: DocClient[] = [];
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
    for (const c of clients.splice(0)) c.destroy();
  });
  return {
    mux: async (key, options = {}) => {
      const socket = await MuxSocket.open(relay, key);
      sockets.push(socket);
      if (options.fence) await socket.prepareFence();
      return socket;
    },
    single: (name, key) => {
      const client = new DocClient(relay, name, key);
      clients.push(client);
      return client;
    },
  };
}
