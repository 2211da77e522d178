import { type Caller, callerId, isSyncError, SyncError, wsCloseCodeOf } from '@scopesync/core';
import type { RawData, WebSocket } from 'ws';
import type { Counter } from '../metrics.ts';
import type { RateLimiter } from '../rate-limiter.ts';
import type { SyncLog } from './sync-log.ts';

/** Which endpoint a socket speaks. */
export type SessionEndpoint = 'doc' | 'mux';

/** Bounds a session enforces. */
export interface SessionLimits {
  /** Frames waiting to be processed before the socket is closed with 4429. */
  readonly maxPendingFrames: number;
  /** Bytes queued for a socket that does not read before it is closed with 4503. */
  readonly maxBufferedBytes: number;
  /** Sustained frames per second one socket may send (burst: twice as many); over it, 4429. */
  readonly maxFramesPerSecond: number;
  /** Awareness bytes one socket may hold on the relay, over all its documents; over it, 4413. */
  readonly maxAwarenessBytes: number;
}

/**
 * The bytes handed to every socket and not yet written out, against one bound for the process:
 * past it, a socket that has anything of its own still queued is closed (4503) instead of
 * queueing more.
 */
export class SendBudget {
  #queued = 0;
  readonly #max: number;

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  /** Bytes queued now. */
  get queued(): number {
    return this.#queued;
  }

  /** Whether `bytes` more fit. */
  fits(bytes: number): boolean {
    return this.#queued + bytes <= this.#max;
  }

  add(bytes: number): void {
    this.#queued += bytes;
  }

  release(bytes: number): void {
    this.#queued = Math.max(0, this.#queued - bytes);
  }
}

/** Options of a {@link SocketSession}. */
export interface SocketSessionOptions {
  readonly id: number;
  readonly endpoint: SessionEndpoint;
  readonly caller: Caller;
  /** The authority's id of the credential it authenticated with, or null (guest). */
  readonly credential: string | null;
  readonly limits: SessionLimits;
  readonly log: SyncLog;
  readonly framesOut: Counter;
  /** The document of a single-document socket (for its log lines); absent for a multiplexed one. */
  readonly doc?: string | undefined;
  /** Who is rate-limited together: the user, or the guest's address. */
  readonly callerKey?: string | undefined;
  /** Frame buckets shared by all sockets of a caller (keyed by `callerKey`); none: no per-caller limit. */
  readonly callerFrames?: RateLimiter | undefined;
  /** The process-wide bound on queued outgoing bytes; none: only the per-socket bound. */
  readonly sendBudget?: SendBudget | undefined;
}

/** What a socket did, for its closing log line. */
export interface SessionStats {
  readonly framesIn: number;
  readonly framesOut: number;
  /** Since the session was created (the upgrade), in ms. */
  readonly ms: number;
  /** The close code the socket ended with (1006 when it was cut). */
  readonly code: number | null;
}

/** Handles one binary frame of a session; whatever it throws closes only this socket. */
export type FrameHandler = (bytes: Uint8Array) => Promise<void>;

/** Code for a normal shutdown of the relay. */
export const CLOSE_GOING_AWAY = 1001;

/**
 * One authenticated WebSocket: who it is (the level follows level changes), its credential,
 * the frame queue (frames are processed one after the other, in arrival order), back-pressure
 * (a socket that does not read is closed instead of buffering without bound) and liveness for
 * the heartbeat. It knows nothing of documents: the endpoints and subscriptions do.
 */
export class SocketSession {
  /** Unique within the process; the origin of this socket's writes. */
  readonly id: number;
  readonly endpoint: SessionEndpoint;
  readonly credential: string | null;
  /** The document of a single-document socket, else undefined. */
  readonly doc: string | undefined;
  readonly #limits: SessionLimits;
  readonly #log: SyncLog;
  readonly #framesOut: Counter;
  readonly #callerKey: string;
  readonly #callerFrames: RateLimiter | null;
  readonly #sendBudget: SendBudget | null;
  /** This socket's own frame bucket. */
  #tokens: number;
  #tokensAt = performance.now();
  /** Awareness bytes this socket holds per document. */
  #awareness: Map<string, number> | null = null;
  #awarenessBytes = 0;
  #caller: Caller;
  #ws: WebSocket | null = null;
  #queue: Promise<void> = Promise.resolve();
  #pending = 0;
  #alive = true;
  #closed = false;
  /** Its credential was revoked: no frame of it is processed any more. */
  #revoked = false;
  /** It sent frames faster than its rate limit: no frame of it is processed any more. */
  #throttled = false;
  /** Reading from the socket is paused until its queue of frames has shrunk (backpressure). */
  #paused = false;
  #onClosed: Array<() => void> | null = null;
  readonly #startedAt = performance.now();
  #framesInCount = 0;
  #framesOutCount = 0;
  #closeCode: number | null = null;

  constructor(options: SocketSessionOptions) {
    this.id = options.id;
    this.doc = options.doc;
    this.endpoint = options.endpoint;
    this.#caller = options.caller;
    this.credential = options.credential;
    this.#limits = options.limits;
    this.#log = options.log;
    this.#framesOut = options.framesOut;
    this.#callerKey = options.callerKey ?? callerId(options.caller);
    this.#callerFrames = options.callerFrames ?? null;
    this.#sendBudget = options.sendBudget ?? null;
    this.#tokens = 2 * options.limits.maxFramesPerSecond;
  }

  /** Who is rate-limited together with this socket (the user, or the guest's address). */
  get callerKey(): string {
    return this.#callerKey;
  }

  /**
   * Its send buffer is over a quarter of its bound: answers that can be asked again (SyncStep2
   * to a SyncStep1) are skipped rather than queued behind what the client has not read yet.
   */
  get congested(): boolean {
    const ws = this.#ws;
    return ws !== null && ws.bufferedAmount > this.#limits.maxBufferedBytes / 4;
  }

  /**
   * Records that this socket's awareness on document `name` is now `bytes` (0 when it left);
   * throws TooLarge when the socket's total would pass its bound.
   */
  holdAwareness(name: string, bytes: number): void {
    const before = this.#awareness?.get(name) ?? 0;
    const total = this.#awarenessBytes - before + bytes;
    if (total > this.#limits.maxAwarenessBytes) {
      throw new SyncError(
        'TooLarge',
        `awareness of this socket would exceed ${this.#limits.maxAwarenessBytes} bytes`,
      );
    }
    this.#awarenessBytes = total;
    // Created on first use: most sockets never send awareness, and an idle socket should be small.
    if (bytes === 0) {
      this.#awareness?.delete(name);
      return;
    }
    this.#awareness ??= new Map();
    this.#awareness.set(name, bytes);
  }

  /** Who the socket is, at its current level. */
  get caller(): Caller {
    return this.#caller;
  }

  /** The caller's audit id (`user_…`, `guest`). */
  get callerId(): string {
    return callerId(this.#caller);
  }

  /** Closed, or refusing work because its credential was revoked. */
  get ended(): boolean {
    return this.#closed || this.#revoked || this.#throttled;
  }

  /** Takes a user's new level (see the `level-changed` event). */
  setCaller(caller: Caller): void {
    this.#caller = caller;
  }

  /** Binds the opened WebSocket and starts reading frames into `onFrame`. */
  attach(ws: WebSocket, onFrame: FrameHandler, onClose: () => void): void {
    this.#ws = ws;
    ws.on('message', (data, isBinary) => this.#receive(data, isBinary, onFrame));
    ws.on('pong', () => {
      this.#alive = true;
    });
    ws.on('error', (error) => this.#log('warn', 'sync socket error', this.context({ error })));
    ws.on('close', (code) => {
      if (this.#closed) return;
      this.#closed = true;
      this.#closeCode = code;
      onClose();
      for (const resolve of this.#onClosed?.splice(0) ?? []) resolve();
    });
  }

  /** Runs `task` after the frames already queued; whatever it throws closes only this socket. */
  enqueue(task: () => Promise<void>): Promise<void> {
    // An idle socket's frame starts at once, in the I/O callback that brought it: the hot path
    // of a live edit (one frame, then a pause) skips a loop turn, which other sockets' frames
    // and the commit of the last batch would otherwise get ahead of.
    const idle = this.#pending === 0;
    this.#pending += 1;
    this.#queue = (idle ? Promise.resolve() : this.#queue.then(yieldToEventLoop))
      // Behind others, each frame starts in a macrotask of its own: a socket with many queued
      // frames (SyncStep1 against a large document, say) lets other sockets, timers and HTTP
      // requests in between.
      .then(() => (this.ended ? undefined : task()))
      .catch((error: unknown) => this.#fail(error))
      .finally(() => {
        this.#pending -= 1;
        if (this.#paused && this.#pending <= RESUME_READING_AT) {
          this.#paused = false;
          this.#ws?.resume();
        }
      });
    return this.#queue;
  }

  /** Resolves when every queued frame has been handled. */
  idle(): Promise<void> {
    return this.#queue;
  }

  /** Sends one encoded frame. Never throws; a socket that stopped reading is closed (4503). */
  sendFrame(frame: Uint8Array): void {
    const ws = this.#ws;
    if (!ws || this.#closed || ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > this.#limits.maxBufferedBytes) {
      this.close(wsCloseCodeOf('Unavailable'), 'the client does not read its socket');
      return;
    }
    const budget = this.#sendBudget;
    if (budget !== null && !budget.fits(frame.byteLength) && ws.bufferedAmount > 0) {
      this.close(wsCloseCodeOf('Unavailable'), 'the relay is short of send buffer: reconnect later');
      return;
    }
    budget?.add(frame.byteLength);
    ws.send(frame, (error) => {
      budget?.release(frame.byteLength);
      if (error) this.#log('warn', 'sending a sync frame failed', this.context({ error }));
    });
    this.#framesOut.inc();
    this.#framesOutCount += 1;
  }

  /** Closes the socket with a code and a reason (cut to the 123 bytes a close frame allows). */
  close(code: number, reason: string): void {
    const ws = this.#ws;
    if (!ws || ws.readyState === ws.CLOSING || ws.readyState === ws.CLOSED) return;
    ws.close(code, truncateReason(reason));
  }

  /** Stops processing frames at once and closes with 4401: its credential was revoked. */
  revoke(reason: string): void {
    this.#revoked = true;
    this.close(wsCloseCodeOf('Unauthorized'), reason);
  }

  /** Whether it was revoked (an upgrade racing the revocation checks this on accept). */
  get revoked(): boolean {
    return this.#revoked;
  }

  /** Closes with 1001 and resolves when the close handshake finished (or the socket is gone). */
  goAway(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#closed || !this.#ws) return resolve();
      this.#onClosed ??= [];
      this.#onClosed.push(resolve);
      this.close(CLOSE_GOING_AWAY, 'relay shutting down');
    });
  }

  /** Kills the TCP connection without a close handshake. */
  terminate(): void {
    if (!this.#closed) this.#ws?.terminate();
  }

  /** One heartbeat: a socket that missed the previous pong is dropped, the others pinged. */
  heartbeat(): void {
    const ws = this.#ws;
    if (!ws) return;
    if (!this.#alive) {
      ws.terminate();
      return;
    }
    this.#alive = false;
    try {
      ws.ping();
    } catch (error) {
      this.#log('warn', 'ping failed', this.context({ error }));
    }
  }

  /** Frames in and out, age and close code, for the log line when it closes. */
  stats(): SessionStats {
    return {
      framesIn: this.#framesInCount,
      framesOut: this.#framesOutCount,
      ms: Math.round(performance.now() - this.#startedAt),
      code: this.#closeCode,
    };
  }

  /** Log context naming this socket. */
  context(extra: Record<string, unknown>): Record<string, unknown> {
    const doc = this.doc === undefined ? {} : { doc: this.doc };
    return { connection: this.id, endpoint: this.endpoint, caller: this.callerId, ...doc, ...extra };
  }

  #receive(data: RawData, isBinary: boolean, onFrame: FrameHandler): void {
    if (this.ended) return;
    if (!isBinary) {
      this.close(wsCloseCodeOf('InvalidMessage'), 'text frames are not part of the protocol');
      return;
    }
    if (this.#pending >= this.#limits.maxPendingFrames) {
      this.close(wsCloseCodeOf('RateLimited'), 'too many frames waiting to be processed');
      return;
    }
    if (!this.#takeFrameToken()) {
      this.#throttled = true; // stop processing what is queued: the socket is going
      this.close(wsCloseCodeOf('RateLimited'), 'too many frames: slow down');
      return;
    }
    this.#framesInCount += 1;
    const bytes = toBytes(data);
    void this.enqueue(() => onFrame(bytes));
    // A client that sends faster than the relay handles its frames (a bulk import, a replay) is
    // slowed by TCP, not cut off: reading stops until the queue drained. The bound above stays
    // for frames ws had already read when it paused.
    if (!this.#paused && this.#pending >= PAUSE_READING_AT) {
      this.#paused = true;
      this.#ws?.pause();
    }
  }

  /** One token from this socket's bucket and from its caller's; false when either is empty. */
  #takeFrameToken(): boolean {
    const perSecond = this.#limits.maxFramesPerSecond;
    const now = performance.now();
    this.#tokens = Math.min(2 * perSecond, this.#tokens + ((now - this.#tokensAt) / 1000) * perSecond);
    this.#tokensAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return this.#callerFrames === null || this.#callerFrames.take(this.#callerKey).ok;
  }

  #fail(error: unknown): void {
    if (isSyncError(error)) {
      if (error.kind !== 'InvalidMessage') {
        this.#log('warn', 'closing a sync socket after an error', this.context({ error }));
      }
      this.close(wsCloseCodeOf(error.kind), error.message);
      return;
    }
    this.#log('error', 'a sync handler threw; closing its socket', this.context({ error }));
    this.close(wsCloseCodeOf('Internal'), 'internal error');
  }
}

/** Frames queued on one socket at which the relay stops reading it. */
const PAUSE_READING_AT = 256;
/** Frames still queued when it reads again. */
const RESUME_READING_AT = 64;

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
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
