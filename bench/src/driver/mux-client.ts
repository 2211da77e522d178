import { decodeMuxFrame, encodeMuxFrame, type Message } from '@scopesync/core';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import WebSocket from 'ws';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { sleep, withTimeout } from './time.ts';

/**
 * Which multiplexed protocol a {@link MuxClient} speaks: our relay's `/sync` endpoint
 * (docs/wire-protocol.md: subscribe, permission, tracked update and ack), or Hocuspocus's
 * (every frame prefixed with the document name, each document opened with an auth message —
 * what one HocuspocusProviderWebsocket shared by many providers sends).
 */
export type MuxProtocol = 'scopesync' | 'hocuspocus';

// Hocuspocus message types and auth subtypes (@hocuspocus/common).
const HP_SYNC = 0;
const HP_AUTH = 2;
const HP_SYNC_REPLY = 4;
const HP_CLOSE = 7;
const HP_SYNC_STATUS = 8;
const HP_AUTH_TOKEN = 0;
const HP_AUTH_DENIED = 1;

/** Frames the send bucket holds when full (under our relay's per-socket burst of 4,000). */
const BUCKET_BURST = 3_600;
/** Frames per second it refills (under our relay's sustained 2,000 per socket). */
const BUCKET_RATE = 1_800;

/** One document open on the socket. */
interface DocState {
  readonly doc: Y.Doc;
  granted: boolean;
  gotStep2: boolean;
  readonly synced: Deferred;
  /** Hocuspocus: SyncStatus messages still expected (one per update sent). */
  writes: Deferred[];
}

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * A client holding many documents over ONE WebSocket, for the many-documents workload. It
 * speaks the wire protocol directly (no IndexedDB, no outbox) so that what is timed is the
 * server's side of subscribing: load the document, decide access, answer SyncStep1.
 *
 * Sends are paced by a token bucket below our relay's per-socket limit (2,000 frames/s,
 * burst 4,000), so a burst the relay would take is sent at once and a long run never trips
 * 4429; Hocuspocus has no such limit, but is paced the same so both see the same client.
 */
export class MuxClient {
  readonly #ws: WebSocket;
  readonly #protocol: MuxProtocol;
  readonly #docs = new Map<string, DocState>();
  readonly #acks = new Map<number, Deferred>();
  #nextRef = 1;
  #tokens = BUCKET_BURST;
  #refilled = performance.now();
  #closedError: Error | null = null;

  /** Frames the bucket holds when full. */
  static readonly BURST = BUCKET_BURST;
  /** Frames per second it refills. */
  static readonly RATE = BUCKET_RATE;

  private constructor(ws: WebSocket, protocol: MuxProtocol) {
    this.#ws = ws;
    this.#protocol = protocol;
    ws.on('message', (data: WebSocket.RawData) => {
      try {
        this.#onMessage(toBytes(data));
      } catch (error) {
        this.#fail(error instanceof Error ? error : new Error(String(error)));
      }
    });
    ws.on('close', (code, reason) => this.#fail(new Error(`socket closed (${code} ${reason.toString()})`)));
    ws.on('error', (error) => this.#fail(error));
  }

  /** Opens the socket at `url` (ours: `ws://…/sync?key=…`; Hocuspocus: its root). */
  static async open(url: string, protocol: MuxProtocol, timeoutMs = 15_000): Promise<MuxClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) =>
          reject(new Error(`upgrade answered ${res.statusCode}`)),
        );
      }),
      timeoutMs,
      `opening ${url}`,
    );
    return new MuxClient(ws, protocol);
  }

  /** The document `name` as this client holds it. */
  doc(name: string): Y.Doc | undefined {
    return this.#docs.get(name)?.doc;
  }

  /**
   * Opens document `name` into an empty Y.Doc and resolves once the server has granted it
   * (ours) and answered our SyncStep1 with SyncStep2. Many may be in flight at once.
   */
  async subscribe(name: string): Promise<void> {
    if (this.#docs.has(name)) throw new Error(`${name} is already open`);
    const state: DocState = {
      doc: new Y.Doc(),
      granted: false,
      gotStep2: false,
      synced: deferred(),
      writes: [],
    };
    this.#docs.set(name, state);
    if (this.#protocol === 'scopesync') {
      await this.#send(name, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
      await this.#send(name, { type: 'sync-step1', stateVector: Y.encodeStateVector(state.doc) });
    } else {
      state.granted = true; // Hocuspocus answers a denied token with its own message
      await this.#sendRaw(name, (e) => {
        encoding.writeVarUint(e, HP_AUTH);
        encoding.writeVarUint(e, HP_AUTH_TOKEN);
        encoding.writeVarString(e, '');
      });
      await this.#sendRaw(name, (e) => {
        encoding.writeVarUint(e, HP_SYNC);
        syncProtocol.writeSyncStep1(e, state.doc);
      });
    }
    if (this.#closedError) throw this.#closedError;
    return state.synced.promise;
  }

  /**
   * Applies `change` to open document `name` and sends the update; resolves once the server
   * acknowledged it (ours: 103 ack after its commit; Hocuspocus: its SyncStatus after applying).
   */
  async write(name: string, change: (doc: Y.Doc) => void): Promise<void> {
    const state = this.#docs.get(name);
    if (!state) throw new Error(`${name} is not open`);
    let update: Uint8Array | null = null;
    const capture = (u: Uint8Array): void => {
      update = u;
    };
    state.doc.once('update', capture);
    change(state.doc);
    state.doc.off('update', capture);
    if (update === null) throw new Error(`change to ${name} made no update`);
    const done = deferred();
    if (this.#protocol === 'scopesync') {
      const ref = this.#nextRef++;
      this.#acks.set(ref, done);
      await this.#send(name, { type: 'tracked-update', ref, update });
    } else {
      const bytes: Uint8Array = update;
      await this.#sendRaw(
        name,
        (e) => {
          encoding.writeVarUint(e, HP_SYNC);
          syncProtocol.writeUpdate(e, bytes);
        },
        () => state.writes.push(done),
      );
    }
    if (this.#closedError) throw this.#closedError;
    return done.promise;
  }

  /** Closes document `name` on the server (ours: unsubscribe; Hocuspocus: its CLOSE message). */
  async unsubscribe(name: string): Promise<void> {
    if (!this.#docs.delete(name)) return;
    if (this.#protocol === 'scopesync') await this.#send(name, { type: 'unsubscribe' });
    else await this.#sendRaw(name, (e) => encoding.writeVarUint(e, HP_CLOSE));
  }

  /** Closes the socket normally and waits (up to 2 s) for the server to see it. */
  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => this.#ws.once('close', () => resolve()));
    this.#ws.close(1000);
    await Promise.race([closed, sleep(2_000)]);
    this.#ws.terminate();
  }

  async #take(): Promise<void> {
    for (;;) {
      const t = performance.now();
      this.#tokens = Math.min(MuxClient.BURST, this.#tokens + ((t - this.#refilled) / 1000) * MuxClient.RATE);
      this.#refilled = t;
      if (this.#tokens >= 1) {
        this.#tokens -= 1;
        return;
      }
      await sleep(Math.ceil(((1 - this.#tokens) / MuxClient.RATE) * 1000));
    }
  }

  async #send(name: string, message: Message): Promise<void> {
    await this.#take();
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(encodeMuxFrame(name, message));
  }

  /** `onSent` runs as the frame goes out, so replies can be matched in wire order. */
  async #sendRaw(
    name: string,
    write: (encoder: encoding.Encoder) => void,
    onSent?: () => void,
  ): Promise<void> {
    await this.#take();
    const encoder = encoding.createEncoder();
    encoding.writeVarString(encoder, name);
    write(encoder);
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    onSent?.();
    this.#ws.send(encoding.toUint8Array(encoder));
  }

  #fail(error: Error): void {
    this.#closedError ??= error;
    for (const state of this.#docs.values()) {
      state.synced.reject(error);
      for (const w of state.writes) w.reject(error);
    }
    for (const ack of this.#acks.values()) ack.reject(error);
    this.#acks.clear();
  }

  #settle(state: DocState): void {
    if (state.granted && state.gotStep2) state.synced.resolve();
  }

  #onMessage(bytes: Uint8Array): void {
    if (this.#protocol === 'scopesync') this.#onOurFrame(bytes);
    else this.#onHocuspocusFrame(bytes);
  }

  #onOurFrame(bytes: Uint8Array): void {
    const { docName, message } = decodeMuxFrame(bytes);
    const state = this.#docs.get(docName);
    switch (message.type) {
      case 'permission':
        if (!state) return;
        if (message.access === 'read' || message.access === 'read-write') {
          state.granted = true;
          this.#settle(state);
        } else {
          state.synced.reject(new Error(`${docName}: access ${message.access} ${message.reason}`));
        }
        return;
      case 'sync-step1':
        // As our client does once granted read-write: answer with what the relay lacks.
        if (state)
          void this.#send(docName, {
            type: 'sync-step2',
            update: Y.encodeStateAsUpdate(state.doc, message.stateVector),
          });
        return;
      case 'sync-step2':
      case 'sync-update':
        if (!state) return;
        Y.applyUpdate(state.doc, message.update, this);
        if (message.type === 'sync-step2') {
          state.gotStep2 = true;
          this.#settle(state);
        }
        return;
      case 'ack':
        this.#acks.get(message.ref)?.resolve();
        this.#acks.delete(message.ref);
        return;
      case 'error': {
        const error = new Error(`${docName}: ${message.kind} ${message.message}`);
        const ack = this.#acks.get(message.ref);
        if (ack) {
          ack.reject(error);
          this.#acks.delete(message.ref);
        } else state?.synced.reject(error);
        return;
      }
      default:
        return;
    }
  }

  #onHocuspocusFrame(bytes: Uint8Array): void {
    const decoder = decoding.createDecoder(bytes);
    const docName = decoding.readVarString(decoder);
    const state = this.#docs.get(docName);
    if (!state) return;
    const type = decoding.readVarUint(decoder);
    switch (type) {
      case HP_SYNC:
      case HP_SYNC_REPLY: {
        const subtype = decoding.readVarUint(decoder);
        if (subtype === syncProtocol.messageYjsSyncStep1) {
          const stateVector = decoding.readVarUint8Array(decoder);
          // Hocuspocus answers our SyncStep2 with a SyncStatus too: queue a placeholder for it.
          void this.#sendRaw(
            docName,
            (e) => {
              encoding.writeVarUint(e, HP_SYNC);
              syncProtocol.writeSyncStep2(e, state.doc, stateVector);
            },
            () => state.writes.push(deferred()),
          );
          return;
        }
        Y.applyUpdate(state.doc, decoding.readVarUint8Array(decoder), this);
        if (subtype === syncProtocol.messageYjsSyncStep2) {
          state.gotStep2 = true;
          this.#settle(state);
        }
        return;
      }
      case HP_AUTH:
        if (decoding.readVarUint(decoder) === HP_AUTH_DENIED)
          state.synced.reject(new Error(`${docName}: permission denied`));
        return;
      case HP_SYNC_STATUS:
        state.writes.shift()?.resolve();
        return;
      default:
        return;
    }
  }
}

function toBytes(data: WebSocket.RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}
