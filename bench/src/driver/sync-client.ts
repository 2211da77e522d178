import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import WebSocket from 'ws';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import type { Framing } from '../servers/peer.ts';
import { sleep } from './time.ts';

// y-protocols message types (1 awareness and 3 query-awareness are ignored), plus two of Hocuspocus's.
const MESSAGE_SYNC = 0;
const MESSAGE_AUTH = 2;
const HOCUSPOCUS_SYNC_REPLY = 4;
const HOCUSPOCUS_SYNC_STATUS = 8;
// Auth subtypes: y-protocols has only 0 = permission denied; Hocuspocus uses 0 = token
// (client → server), 1 = permission denied, 2 = authenticated.
const HOCUSPOCUS_AUTH_TOKEN = 0;
const HOCUSPOCUS_AUTH_DENIED = 1;

/** Options for one bench client. */
export interface SyncClientOptions {
  readonly url: string;
  readonly docName: string;
  readonly framing: Framing;
  /** Apply nothing the server sends: a writer that only streams precomputed updates. */
  readonly sendOnly?: boolean;
  readonly doc?: Y.Doc;
}

/**
 * A stock y-protocols client for one document over one WebSocket: SyncStep1/2 on open,
 * local updates sent as sync updates, remote updates applied with this client as origin.
 * The same code drives every server, so they are measured identically; only the framing
 * differs for Hocuspocus (document-name prefix and an opening auth message).
 */
export class SyncClient {
  readonly doc: Y.Doc;
  readonly docName: string;
  /** Hocuspocus SyncStatus messages received (its per-update acknowledgement). */
  syncStatusCount = 0;
  readonly #ws: WebSocket;
  readonly #framing: Framing;
  readonly #sendOnly: boolean;
  readonly #synced: Promise<void>;
  #closed: Promise<void> | null = null;
  #waiters: Array<() => boolean> = [];

  private constructor(options: SyncClientOptions) {
    this.doc = options.doc ?? new Y.Doc();
    this.docName = options.docName;
    this.#framing = options.framing;
    this.#sendOnly = options.sendOnly ?? false;
    this.#ws = new WebSocket(options.url, { perMessageDeflate: false });
    let resolveSynced!: () => void;
    let rejectSynced!: (error: Error) => void;
    this.#synced = new Promise<void>((resolve, reject) => {
      resolveSynced = resolve;
      rejectSynced = reject;
    });
    // A client that fails later must not crash the run through an unobserved rejection.
    this.#synced.catch(() => {});
    this.#ws.on('open', () => this.#onOpen());
    this.#ws.on('message', (data: WebSocket.RawData) => {
      try {
        this.#onMessage(toBytes(data), resolveSynced, rejectSynced);
      } catch (error) {
        rejectSynced(error instanceof Error ? error : new Error(String(error)));
      }
    });
    this.#ws.on('error', (error) => rejectSynced(error));
    this.#ws.on('close', (code, reason) =>
      rejectSynced(new Error(`socket closed (${code} ${reason.toString()}) before sync`)),
    );
    this.doc.on('update', this.#onDocUpdate);
  }

  /** Opens a client and resolves once the server's SyncStep2 has been applied. */
  static async open(options: SyncClientOptions, timeoutMs = 15_000): Promise<SyncClient> {
    const client = new SyncClient(options);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.#synced,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`sync of ${options.docName} timed out`)), timeoutMs);
        }),
      ]);
    } catch (error) {
      client.terminate();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return client;
  }

  /** Bytes queued on the socket and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** Sends a Yjs update as a sync update without applying it here (see `sendOnly`). */
  sendRawUpdate(update: Uint8Array): void {
    const encoder = this.#encoder();
    encoding.writeVarUint(encoder, MESSAGE_SYNC);
    syncProtocol.writeUpdate(encoder, update);
    this.#ws.send(encoding.toUint8Array(encoder));
  }

  /** Waits until less than `limit` bytes are queued on the socket (polling, bounded by `timeoutMs`). */
  async drain(limit: number, timeoutMs = 30_000): Promise<void> {
    const end = performance.now() + timeoutMs;
    while (this.#ws.bufferedAmount >= limit) {
      if (performance.now() > end) throw new Error('socket did not drain');
      await sleep(1);
    }
  }

  /**
   * Resolves with the time (performance.now()) at which this replica first held `clock`
   * operations of client `clientId` — read inside the message handler that applied them —
   * or null after `timeoutMs`.
   */
  waitForClock(clientId: number, clock: number, timeoutMs: number): Promise<number | null> {
    const done = (): boolean => Y.getState(this.doc.store, clientId) >= clock;
    if (done()) return Promise.resolve(performance.now());
    return new Promise((resolve) => {
      const check = (): boolean => {
        if (!done()) return false;
        const at = performance.now();
        clearTimeout(timer);
        resolve(at);
        return true;
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== check);
        resolve(null);
      }, timeoutMs);
      this.#waiters.push(check);
    });
  }

  /** Closes the socket normally and waits (up to 2 s) for the server to see it. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.doc.off('update', this.#onDocUpdate);
      if (this.#ws.readyState === WebSocket.CLOSED) return resolve();
      const timer = setTimeout(() => {
        this.#ws.terminate();
        resolve();
      }, 2_000);
      this.#ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#ws.close(1000);
    });
    return this.#closed;
  }

  /** Drops the connection at once. */
  terminate(): void {
    this.doc.off('update', this.#onDocUpdate);
    this.#ws.terminate();
  }

  #encoder(): encoding.Encoder {
    const encoder = encoding.createEncoder();
    if (this.#framing === 'hocuspocus') encoding.writeVarString(encoder, this.docName);
    return encoder;
  }

  #onOpen(): void {
    if (this.#framing === 'hocuspocus') {
      const auth = this.#encoder();
      encoding.writeVarUint(auth, MESSAGE_AUTH);
      encoding.writeVarUint(auth, HOCUSPOCUS_AUTH_TOKEN);
      encoding.writeVarString(auth, '');
      this.#ws.send(encoding.toUint8Array(auth));
    }
    const step1 = this.#encoder();
    encoding.writeVarUint(step1, MESSAGE_SYNC);
    syncProtocol.writeSyncStep1(step1, this.doc);
    this.#ws.send(encoding.toUint8Array(step1));
  }

  readonly #onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin !== this && this.#ws.readyState === WebSocket.OPEN) this.sendRawUpdate(update);
  };

  #onMessage(data: Uint8Array, resolveSynced: () => void, rejectSynced: (error: Error) => void): void {
    const decoder = decoding.createDecoder(data);
    if (this.#framing === 'hocuspocus') decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    switch (type) {
      case MESSAGE_SYNC:
      case HOCUSPOCUS_SYNC_REPLY: {
        const subtype = decoding.readVarUint(decoder);
        if (subtype === syncProtocol.messageYjsSyncStep1) {
          const reply = this.#encoder();
          encoding.writeVarUint(reply, MESSAGE_SYNC);
          syncProtocol.writeSyncStep2(reply, this.doc, decoding.readVarUint8Array(decoder));
          this.#ws.send(encoding.toUint8Array(reply));
          return;
        }
        const update = decoding.readVarUint8Array(decoder);
        if (!this.#sendOnly) {
          Y.applyUpdate(this.doc, update, this);
          if (this.#waiters.length > 0) this.#waiters = this.#waiters.filter((check) => !check());
        }
        if (subtype === syncProtocol.messageYjsSyncStep2) resolveSynced();
        return;
      }
      case MESSAGE_AUTH: {
        const subtype = decoding.readVarUint(decoder);
        const denied = this.#framing === 'hocuspocus' ? subtype === HOCUSPOCUS_AUTH_DENIED : subtype === 0;
        if (denied) rejectSynced(new Error(`permission denied: ${decoding.readVarString(decoder)}`));
        return;
      }
      case HOCUSPOCUS_SYNC_STATUS:
        if (this.#framing === 'hocuspocus') this.syncStatusCount++;
        return;
      default:
        // Awareness, query-awareness and Hocuspocus's stateless messages carry nothing we measure.
        return;
    }
  }
}

function toBytes(data: WebSocket.RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}
