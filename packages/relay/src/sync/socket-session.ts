import type { Socket } from 'node:net';
import { type Caller, callerId, isSyncError, SyncError, wsCloseCodeOf } from '@scopesync/core';
import type { RawData, WebSocket } from 'ws';
import type { Counter } from '../metrics.ts';
import type { RateLimiter } from '../rate-limiter.ts';
import { type SharedFrame, tcpSocketOf, writeFramed } from './shared-frame.ts';
import type { Subscription } from './subscription.ts';
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

/**
 * What every session of one server shares: settings and meters, held once by reference rather
 * than copied into each socket's session.
 */
export interface SessionShared {
  readonly limits: SessionLimits;
  readonly log: SyncLog;
  readonly framesOut: Counter;
  /** Frame buckets shared by all sockets of a caller (keyed by `callerKey`); none: no per-caller limit. */
  readonly callerFrames?: RateLimiter | undefined;
  /** The process-wide bound on queued outgoing bytes; none: only the per-socket bound. */
  readonly sendBudget?: SendBudget | undefined;
}

/** Options of a {@link SocketSession}. */
export interface SocketSessionOptions {
  readonly id: number;
  readonly endpoint: SessionEndpoint;
  readonly caller: Caller;
  /** The authority's id of the credential it authenticated with, or null (guest). */
  readonly credential: string | null;
  readonly shared: SessionShared;
  /** The document of a single-document socket (for its log lines); absent for a multiplexed one. */
  readonly doc?: string | undefined;
  /** Who is rate-limited together: the user, or the guest's address. */
  readonly callerKey?: string | undefined;
}

/**
 * What serves the sockets of one endpoint: one object for all of them (the session is passed
 * in), not closures bound per socket.
 */
export interface SessionHandler {
  /**
   * Handles one binary frame of `session`, in this turn or by the promise it returns; whatever
   * it throws or rejects with closes only that socket.
   */
  frame(session: SocketSession, bytes: Uint8Array): void | Promise<void>;
  /** The socket closed; called once. */
  closed(session: SocketSession): void;
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

/** Queued work of a session: a received frame (for its handler) or a task. */
type Work = Uint8Array | (() => Promise<void>);

/** Code for a normal shutdown of the relay. */
export const CLOSE_GOING_AWAY = 1001;

/**
 * Where an attached socket keeps its session, for the listeners every socket shares: a property
 * of the socket rather than an entry in a WeakMap, whose table grew by an entry per socket.
 */
const SESSION: unique symbol = Symbol('scopesync.session');

/** A `ws` socket with its session attached. */
type AttachedSocket = WebSocket & { [SESSION]?: SocketSession };

/** Bits of a session's `#flags` (one small integer, not a field per yes/no): its socket closed. */
const CLOSED = 1;
/** Its credential was revoked: no frame of it is processed any more. */
const REVOKED = 2;
/** It sent frames faster than its rate limit: no frame of it is processed any more. */
const THROTTLED = 4;
/** Reading from the socket is paused until its queue of frames has shrunk (backpressure). */
const PAUSED = 8;
/** It holds a place in its caller's count of open sockets (kept by the SyncServer). */
const COUNTED = 16;
/** It is among its server's open sockets (kept by the SyncServer). */
const LISTED = 32;

/**
 * One authenticated WebSocket: who it is (the level follows level changes), its credential,
 * the frame queue (frames are processed one after the other, in arrival order), back-pressure
 * (a socket that does not read is closed instead of buffering without bound) and liveness for
 * the heartbeat. It knows nothing of documents: the endpoints and subscriptions do.
 *
 * An idle socket is most of what a relay holds, so a session keeps little of its own: the
 * settings every session shares are one reference, the socket's listeners are shared by every
 * socket (they find the session from the socket), and state few sockets use (awareness, queued
 * frames) is allocated on first use.
 */
export class SocketSession {
  /** Unique within the process; the origin of this socket's writes. */
  readonly id: number;
  readonly endpoint: SessionEndpoint;
  readonly credential: string | null;
  /** The document of a single-document socket, else undefined. */
  readonly doc: string | undefined;
  readonly #shared: SessionShared;
  readonly #callerKey: string;
  /**
   * This socket's own frame bucket, as the time (ms) at which it would be full again: one
   * number instead of a token count and its time (a full bucket is any time in the past).
   */
  #bucketFullAt = 0;
  /** Awareness bytes this socket holds, in all and per document; null until it sends awareness. */
  #awareness: { total: number; readonly byDoc: Map<string, number> } | null = null;
  #caller: Caller;
  #ws: WebSocket | null = null;
  #handler: SessionHandler | null = null;
  /** Settles when the queue has drained; null while nothing is queued or running. */
  #running: Promise<void> | null = null;
  /** Work queued behind the one running, in order; null while there is none. */
  #waiting: Work[] | null = null;
  #pending = 0;
  /**
   * Bytes read from its TCP socket when it was last pinged; -1 before the first ping. Anything
   * read since (the pong, or any frame) shows the client is alive. Read from the socket rather
   * than kept by a `pong` listener: a fourth listener grows every socket's listener table from
   * four slots to eight (~100 B per idle socket).
   */
  #readAtPing = -1;
  /** CLOSED, REVOKED, THROTTLED, PAUSED, COUNTED and LISTED, or'ed. */
  #flags = 0;
  #onClosed: Array<() => void> | null = null;
  /** In whole ms: a small integer in the session, not a heap number of its own. */
  readonly #startedAt = Math.floor(performance.now());
  #framesInCount = 0;
  #framesOutCount = 0;
  #closeCode: number | null = null;
  /**
   * Its subscriptions, kept by the `SubscriptionRegistry`: the one itself while it has one
   * (every `/sync/<doc>` socket), a set while it has more. A field rather than an entry per
   * socket in a table of the registry's.
   */
  subscriptions: Subscription | Set<Subscription> | null = null;
  /**
   * While this turn's frames are held in the corked TCP socket (see {@link #cork}): what was
   * queued for the socket before them; -1 when it is not corked.
   */
  #queuedBeforeCork = -1;

  constructor(options: SocketSessionOptions) {
    this.id = options.id;
    this.doc = options.doc;
    this.endpoint = options.endpoint;
    this.#caller = options.caller;
    this.credential = options.credential;
    this.#shared = options.shared;
    this.#callerKey = options.callerKey ?? callerId(options.caller);
  }

  /** It holds a place in its caller's count of open sockets (kept by the SyncServer). */
  get counted(): boolean {
    return (this.#flags & COUNTED) !== 0;
  }

  set counted(value: boolean) {
    this.#flags = value ? this.#flags | COUNTED : this.#flags & ~COUNTED;
  }

  /** It is among its server's open sockets (kept by the SyncServer). */
  get listed(): boolean {
    return (this.#flags & LISTED) !== 0;
  }

  set listed(value: boolean) {
    this.#flags = value ? this.#flags | LISTED : this.#flags & ~LISTED;
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
    return ws !== null && this.#queued(ws) > this.#shared.limits.maxBufferedBytes / 4;
  }

  /**
   * Bytes the client has not taken yet: what `ws` holds, less this turn's frames while they are
   * held by the cork (those go out at the end of the turn; they say nothing of the reader).
   */
  #queued(ws: WebSocket): number {
    return this.#queuedBeforeCork >= 0 ? this.#queuedBeforeCork : ws.bufferedAmount;
  }

  /**
   * While frames of its own wait behind the one being handled: holds what is sent to the socket
   * in its TCP socket and writes it in one `writev` once the turn's microtasks are done (a tick
   * later, before any timer or I/O). A socket with a thousand subscribes queued, each answered
   * with two or three frames, paid one system call per frame, and on loopback the reader's whole
   * receive path. A socket with nothing queued is never corked: what it is sent (a frame of a
   * lone edit, a permission change an HTTP call made) is written at once, before that call answers.
   */
  #cork(): void {
    const ws = this.#ws;
    if (ws === null || this.#queuedBeforeCork >= 0) return;
    const socket = tcpSocketOf(ws);
    if (!socket || socket.destroyed) return;
    this.#queuedBeforeCork = ws.bufferedAmount;
    socket.cork();
    process.nextTick(SocketSession.#uncork, this, socket);
  }

  static #uncork(session: SocketSession, socket: Socket): void {
    session.#queuedBeforeCork = -1;
    socket.uncork();
  }

  /**
   * Records that this socket's awareness on document `name` is now `bytes` (0 when it left);
   * throws TooLarge when the socket's total would pass its bound.
   */
  holdAwareness(name: string, bytes: number): void {
    const held = this.#awareness;
    // Created on first use: most sockets never send awareness, and an idle socket should be small.
    if (held === null && bytes === 0) return;
    const before = held?.byDoc.get(name) ?? 0;
    const total = (held?.total ?? 0) - before + bytes;
    const max = this.#shared.limits.maxAwarenessBytes;
    if (total > max) throw new SyncError('TooLarge', `awareness of this socket would exceed ${max} bytes`);
    const awareness = held ?? { total: 0, byDoc: new Map<string, number>() };
    this.#awareness = awareness;
    awareness.total = total;
    if (bytes === 0) awareness.byDoc.delete(name);
    else awareness.byDoc.set(name, bytes);
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
    return (this.#flags & (CLOSED | REVOKED | THROTTLED)) !== 0;
  }

  /** Takes a user's new level (see the `level-changed` event). */
  setCaller(caller: Caller): void {
    this.#caller = caller;
  }

  /** Binds the opened WebSocket and starts reading its frames into `handler`. */
  attach(ws: WebSocket, handler: SessionHandler): void {
    this.#ws = ws;
    this.#handler = handler;
    (ws as AttachedSocket)[SESSION] = this;
    ws.on('message', SocketSession.#listeners.message);
    ws.on('error', SocketSession.#listeners.error);
    ws.on('close', SocketSession.#listeners.close);
  }

  /**
   * The listeners of every attached socket, shared: each finds its session from the socket
   * (`this`), so a socket costs no closures of its own.
   */
  static readonly #listeners = {
    message(this: WebSocket, data: RawData, isBinary: boolean): void {
      const session = (this as AttachedSocket)[SESSION];
      if (session) session.#receive(data, isBinary);
    },
    error(this: WebSocket, error: Error): void {
      const session = (this as AttachedSocket)[SESSION];
      if (session) session.#shared.log('warn', 'sync socket error', session.context({ error }));
    },
    close(this: WebSocket, code: number): void {
      const session = (this as AttachedSocket)[SESSION];
      if (session) session.#closedWith(code);
    },
  };

  /**
   * Runs `task` after the frames already queued; whatever it throws closes only this socket.
   * Resolves when the queue has drained, this task included.
   */
  enqueue(task: () => Promise<void>): Promise<void> {
    return this.#push(task);
  }

  /** Resolves when every queued frame has been handled. */
  idle(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  /** Sends one encoded frame. Never throws; a socket that stopped reading is closed (4503). */
  sendFrame(frame: Uint8Array): void {
    this.#send(frame, null);
  }

  /**
   * Sends a frame that other sockets get too (a broadcast): its WebSocket framing is built once
   * for all of them and written to this socket as is (see {@link SharedFrame}). Never throws.
   */
  sendShared(frame: SharedFrame): void {
    this.#send(frame.bytes, frame);
  }

  #send(frame: Uint8Array, shared: SharedFrame | null): void {
    const ws = this.#ws;
    if (!ws || (this.#flags & CLOSED) !== 0 || ws.readyState !== ws.OPEN) return;
    const settings = this.#shared;
    const queued = this.#queued(ws);
    if (queued > settings.limits.maxBufferedBytes) {
      this.close(wsCloseCodeOf('Unavailable'), 'the client does not read its socket');
      return;
    }
    const budget = settings.sendBudget;
    if (budget !== undefined && !budget.fits(frame.byteLength) && queued > 0) {
      this.close(wsCloseCodeOf('Unavailable'), 'the relay is short of send buffer: reconnect later');
      return;
    }
    budget?.add(frame.byteLength);
    const sent = (error?: Error | null): void => {
      budget?.release(frame.byteLength);
      if (error) settings.log('warn', 'sending a sync frame failed', this.context({ error }));
    };
    if (shared === null || !writeFramed(ws, shared, sent)) ws.send(frame, sent);
    settings.framesOut.inc();
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
    this.#flags |= REVOKED;
    this.close(wsCloseCodeOf('Unauthorized'), reason);
  }

  /** Whether it was revoked (an upgrade racing the revocation checks this on accept). */
  get revoked(): boolean {
    return (this.#flags & REVOKED) !== 0;
  }

  /** Closes with 1001 and resolves when the close handshake finished (or the socket is gone). */
  goAway(): Promise<void> {
    return new Promise((resolve) => {
      if ((this.#flags & CLOSED) !== 0 || !this.#ws) return resolve();
      this.#onClosed ??= [];
      this.#onClosed.push(resolve);
      this.close(CLOSE_GOING_AWAY, 'relay shutting down');
    });
  }

  /** Kills the TCP connection without a close handshake. */
  terminate(): void {
    if ((this.#flags & CLOSED) === 0) this.#ws?.terminate();
  }

  /**
   * One heartbeat: a socket from which nothing at all was read since the previous ping (not its
   * pong, not a frame) is dropped, the others pinged.
   */
  heartbeat(): void {
    const ws = this.#ws;
    if (!ws) return;
    const read = tcpSocketOf(ws)?.bytesRead ?? 0;
    if (read === this.#readAtPing) {
      ws.terminate();
      return;
    }
    this.#readAtPing = read;
    try {
      ws.ping();
    } catch (error) {
      this.#shared.log('warn', 'ping failed', this.context({ error }));
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

  #closedWith(code: number): void {
    if ((this.#flags & CLOSED) !== 0) return;
    this.#flags |= CLOSED;
    this.#closeCode = code;
    this.#handler?.closed(this);
    for (const resolve of this.#onClosed?.splice(0) ?? []) resolve();
  }

  #receive(data: RawData, isBinary: boolean): void {
    if (this.ended) return;
    if (!isBinary) {
      this.close(wsCloseCodeOf('InvalidMessage'), 'text frames are not part of the protocol');
      return;
    }
    if (this.#pending >= this.#shared.limits.maxPendingFrames) {
      this.close(wsCloseCodeOf('RateLimited'), 'too many frames waiting to be processed');
      return;
    }
    if (!this.#takeFrameToken()) {
      this.#flags |= THROTTLED; // stop processing what is queued: the socket is going
      this.close(wsCloseCodeOf('RateLimited'), 'too many frames: slow down');
      return;
    }
    this.#framesInCount += 1;
    // Queued as bytes, not as a closure over them: the handler is the endpoint's, shared.
    void this.#push(toBytes(data));
    // A client that sends faster than the relay handles its frames (a bulk import, a replay) is
    // slowed by TCP, not cut off: reading stops until the queue drained. The bound above stays
    // for frames ws had already read when it paused.
    if ((this.#flags & PAUSED) === 0 && this.#pending >= PAUSE_READING_AT) {
      this.#flags |= PAUSED;
      this.#ws?.pause();
    }
  }

  /** Queues `work` behind what is queued, starting the queue when it was empty; resolves when it drained. */
  #push(work: Work): Promise<void> {
    this.#pending += 1;
    if (this.#running === null) {
      this.#running = this.#drain(work);
    } else {
      this.#waiting ??= [];
      this.#waiting.push(work);
    }
    return this.#running;
  }

  /**
   * Runs the queue until it is empty, one piece of work after the other. No promise chain is
   * kept per frame: an idle socket holds no queue at all.
   */
  async #drain(first: Work): Promise<void> {
    // An idle socket's frame starts at once, in the I/O callback that brought it (a microtask
    // later, never inside the caller's own code): the hot path of a live edit (one frame, then
    // a pause) skips a loop turn, which other sockets' frames and the commit of the last batch
    // would otherwise get ahead of.
    await undefined;
    let work: Work | undefined = first;
    let sliceEnds = performance.now() + FRAME_SLICE_MS;
    while (work !== undefined) {
      try {
        if (this.#waiting !== null && this.#waiting.length > 0) this.#cork();
        if (!this.ended) await (typeof work === 'function' ? work() : this.#handler?.frame(this, work));
      } catch (error) {
        this.#fail(error);
      }
      this.#pending -= 1;
      if ((this.#flags & PAUSED) !== 0 && this.#pending <= RESUME_READING_AT) {
        this.#flags &= ~PAUSED;
        this.#ws?.resume();
      }
      work = this.#waiting?.shift();
      // A socket with many queued frames (a burst of edits, SyncStep1 against a large document)
      // lets other sockets, timers and HTTP requests in once per time slice: a macrotask per
      // frame cost a replay of 260k keystrokes 260k loop turns.
      if (work !== undefined && performance.now() >= sliceEnds) {
        await yieldToEventLoop();
        sliceEnds = performance.now() + FRAME_SLICE_MS;
      }
    }
    this.#waiting = null;
    this.#running = null;
  }

  /** One token from this socket's bucket and from its caller's; false when either is empty. */
  #takeFrameToken(): boolean {
    const perSecond = this.#shared.limits.maxFramesPerSecond;
    const msPerToken = 1000 / perSecond;
    const now = performance.now();
    // Burst: twice the rate. Taking a token pushes the time it is full again by one token's worth.
    const fullAt = Math.max(this.#bucketFullAt, now);
    if (fullAt - now > (2 * perSecond - 1) * msPerToken) return false;
    this.#bucketFullAt = fullAt + msPerToken;
    const callerFrames = this.#shared.callerFrames;
    return callerFrames === undefined || callerFrames.take(this.#callerKey).ok;
  }

  #fail(error: unknown): void {
    const log = this.#shared.log;
    if (isSyncError(error)) {
      if (error.kind !== 'InvalidMessage') {
        log('warn', 'closing a sync socket after an error', this.context({ error }));
      }
      this.close(wsCloseCodeOf(error.kind), error.message);
      return;
    }
    log('error', 'a sync handler threw; closing its socket', this.context({ error }));
    this.close(wsCloseCodeOf('Internal'), 'internal error');
  }
}

/** How long one socket's queued frames run before the loop is given to others, in ms. */
const FRAME_SLICE_MS = 1;

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
