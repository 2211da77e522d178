import {
  decodeMuxFrame,
  type ErrorKind,
  encodeMuxFrame,
  kindOfWsCloseCode,
  SyncError,
} from '@scopesync/core';
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff.ts';
import { Emitter, type Unsubscribe } from './typed-events.ts';

/**
 * The part of the WebSocket API the client uses: the browser's `WebSocket` and the `ws`
 * package's both fit.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { readonly data: unknown }) => void) | null;
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket class: the global `WebSocket` in browsers, `ws`'s `WebSocket` in Node 20. */
export type WebSocketClass = new (url: string, protocols?: string[]) => object;

/** The subprotocol the relay answers; the credential rides beside it as `bearer.<credential>`. */
const SYNC_SUBPROTOCOL = 'scopesync';

/**
 * How a {@link Connection} notices a silently dead socket (half-open TCP: no FIN or RST ever
 * arrives). A browser page cannot see WebSocket protocol pings, so the client asks the relay
 * itself with an application-level ping.
 */
export interface LivenessOptions {
  /** After this long without any frame from the relay, send a ping (milliseconds). */
  readonly idleMs: number;
  /** After the ping, this long without any frame means the socket is dead (milliseconds). */
  readonly timeoutMs: number;
}

/** Ping after 15 s of silence, give up 10 s later: stock y-websocket gives up after 30 s. */
export const DEFAULT_LIVENESS: LivenessOptions = { idleMs: 15_000, timeoutMs: 10_000 };

/** Close code and reason of a socket the client gave up on because the relay stopped answering. */
export const NO_ANSWER_CLOSE = { code: 4000, reason: 'no answer from the relay' } as const;

/** Doc name of connection-level frames (ping, pong): no document is named "". */
const CONNECTION_LEVEL = '';

/** The connection's state. */
export type ConnectionStatus = 'offline' | 'connecting' | 'online' | 'auth-failed' | 'closed';

/** The events of a {@link Connection}. */
export interface ConnectionEvents {
  open: undefined;
  close: { readonly code: number; readonly reason: string };
  message: Uint8Array;
  status: ConnectionStatus;
  /** The relay refused our key: the connection stopped for good. */
  'auth-error': SyncError;
}

/** How a {@link Connection} reaches the relay. */
export interface ConnectionOptions {
  /** The full WebSocket URL (`ws://host/sync`). */
  readonly url: string;
  /**
   * The API key or token to authenticate with, asked before every attempt; sent in the
   * subprotocol (`scopesync, bearer.<credential>`), never in the URL. Undefined: a guest.
   */
  readonly credential?: (() => string | undefined | Promise<string | undefined>) | undefined;
  /**
   * Asked for a fresh token after the relay closed an open socket with 4401 (the token
   * expired): the connection then reconnects instead of stopping.
   */
  readonly refreshCredential?: (() => Promise<unknown>) | undefined;
  readonly WebSocket: WebSocketClass;
  readonly backoff?: Partial<BackoffOptions>;
  /**
   * Asked after a socket failed before it opened. A browser cannot see the HTTP status of a
   * refused upgrade (it only sees 1006), so the client asks the relay over HTTP whether its
   * key is still good: 'unauthorized' stops reconnecting.
   */
  readonly checkAuth?: () => Promise<'ok' | 'unauthorized' | 'unknown'>;
  /** Random source for jitter (tests pass a seeded one). */
  readonly random?: () => number;
  /** When to ping a silent relay and when to give up on it; see {@link DEFAULT_LIVENESS}. */
  readonly liveness?: Partial<LivenessOptions> | undefined;
}

const OPEN = 1;
/** Close codes after which reconnecting cannot help: the key is bad or not allowed. */
const AUTH_KINDS: ReadonlySet<ErrorKind | undefined> = new Set<ErrorKind | undefined>([
  'Unauthorized',
  'Forbidden',
]);

/**
 * The client's one WebSocket to the multiplexed /sync endpoint. Reconnects with exponential
 * backoff and jitter; stops for good on an authentication failure (close code 4401/4403, or
 * an upgrade refused with 401 as `checkAuth` reports it) so that a bad key never turns into a
 * reconnect storm.
 */
export class Connection {
  readonly #options: ConnectionOptions;
  readonly #backoff: BackoffOptions;
  readonly #liveness: LivenessOptions;
  readonly #events = new Emitter<ConnectionEvents>();
  #socket: WebSocketLike | undefined;
  #status: ConnectionStatus = 'offline';
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Pings a silent relay, then gives up on it; re-armed by every frame received. */
  #livenessTimer: ReturnType<typeof setTimeout> | undefined;
  #pingNonce = 0;
  #wanted = false;
  /** Counts connection attempts, so a credential that arrives after a stop() opens nothing. */
  #attempts = 0;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#liveness = { ...DEFAULT_LIVENESS, ...options.liveness };
  }

  /** The current state. */
  get status(): ConnectionStatus {
    return this.#status;
  }

  /** True while the socket is open. */
  get isOpen(): boolean {
    return this.#status === 'online' && this.#socket?.readyState === OPEN;
  }

  /** Listens to one of the {@link ConnectionEvents}. */
  on<K extends keyof ConnectionEvents>(
    event: K,
    listener: (value: ConnectionEvents[K]) => void,
  ): Unsubscribe {
    return this.#events.on(event, listener);
  }

  /** Starts connecting (and reconnecting). No-op when already started, auth-failed or closed. */
  start(): void {
    if (this.#wanted || this.#status === 'auth-failed' || this.#status === 'closed') return;
    this.#wanted = true;
    this.#attempt = 0;
    this.#connect();
  }

  /** Closes the socket and stops reconnecting until {@link start}. */
  stop(): void {
    this.#wanted = false;
    this.#attempts++;
    this.#clearTimer();
    this.#clearLiveness();
    const socket = this.#socket;
    const wasOpen = this.isOpen;
    this.#socket = undefined;
    if (socket) this.#closeSocket(socket, 1000, 'client offline');
    if (this.#status !== 'auth-failed' && this.#status !== 'closed') this.#setStatus('offline');
    if (wasOpen) this.#events.emit('close', { code: 1000, reason: 'client offline' });
  }

  /** Sends one frame; false when the socket is not open (the caller re-sends after reconnect). */
  send(frame: Uint8Array): boolean {
    const socket = this.#socket;
    if (!socket || !this.isOpen) return false;
    try {
      socket.send(frame);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Closes the open socket and reconnects with backoff, as after any loss: for when the client
   * cannot use this socket yet (the relay did not answer a question that must come first).
   */
  drop(reason: string): void {
    const socket = this.#socket;
    if (!socket || !this.isOpen) return;
    this.#closeSocket(socket, NO_ANSWER_CLOSE.code, reason);
    this.#lost(NO_ANSWER_CLOSE.code, reason, true);
  }

  /** Stops for good. Idempotent. */
  close(): void {
    if (this.#status === 'closed') return;
    this.stop();
    this.#setStatus('closed');
    this.#events.clear();
  }

  #connect(): void {
    if (!this.#wanted) return;
    this.#setStatus('connecting');
    const attempt = ++this.#attempts;
    Promise.resolve()
      .then(() => this.#options.credential?.())
      .then(
        (credential) => {
          if (attempt === this.#attempts) this.#open(credential);
        },
        (error: unknown) => {
          if (attempt !== this.#attempts) return;
          // The app says this user may not sign in: stop, as for a refused key.
          if (error instanceof SyncError && error.kind === 'Unauthorized') return this.#authFailed(error);
          console.error('scopesync: could not get a credential to connect with', error);
          this.#scheduleReconnect();
        },
      );
  }

  #open(credential: string | undefined): void {
    if (!this.#wanted) return;
    let socket: WebSocketLike;
    try {
      const protocols = credential === undefined ? undefined : [SYNC_SUBPROTOCOL, `bearer.${credential}`];
      socket =
        protocols === undefined
          ? (new this.#options.WebSocket(this.#options.url) as WebSocketLike)
          : (new this.#options.WebSocket(this.#options.url, protocols) as WebSocketLike);
    } catch (error) {
      console.error('scopesync: could not create a WebSocket', error);
      this.#scheduleReconnect();
      return;
    }
    this.#socket = socket;
    socket.binaryType = 'arraybuffer';
    let opened = false;
    socket.onopen = () => {
      if (this.#socket !== socket) return;
      opened = true;
      this.#attempt = 0;
      this.#awaitFrame(socket);
      this.#setStatus('online');
      this.#events.emit('open', undefined);
    };
    socket.onmessage = (event) => {
      if (this.#socket !== socket) return;
      // Any frame proves the relay alive, not only a pong.
      this.#awaitFrame(socket);
      const bytes = toBytes(event.data);
      if (bytes && !isPong(bytes)) this.#events.emit('message', bytes);
    };
    socket.onerror = () => {
      // onclose follows and decides what to do.
    };
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      this.#lost(event.code, event.reason, opened);
    };
  }

  /** The current socket is gone: tell listeners and decide whether and when to come back. */
  #lost(code: number, reason: string, opened: boolean): void {
    this.#socket = undefined;
    this.#clearLiveness();
    if (opened) this.#events.emit('close', { code, reason });
    void this.#afterClose(code, reason, opened);
  }

  /** (Re)starts the wait for the relay's next frame: ping it after `idleMs` of silence. */
  #awaitFrame(socket: WebSocketLike): void {
    this.#clearLiveness();
    this.#livenessTimer = setTimeout(() => {
      this.#livenessTimer = undefined;
      if (this.#socket !== socket) return;
      this.#ping(socket);
    }, this.#liveness.idleMs);
  }

  /** Pings a silent relay; without any frame within `timeoutMs` the socket is taken as dead. */
  #ping(socket: WebSocketLike): void {
    this.#pingNonce = (this.#pingNonce + 1) % 0x1_0000_0000;
    this.send(encodeMuxFrame(CONNECTION_LEVEL, { type: 'ping', nonce: this.#pingNonce }));
    this.#livenessTimer = setTimeout(() => {
      // One more task first: after a long stall of the page, an answer may already wait in the
      // queue behind this timer, and a frame that arrives re-arms the timer.
      this.#livenessTimer = setTimeout(() => {
        this.#livenessTimer = undefined;
        if (this.#socket !== socket) return;
        // A half-open socket never reports its own death: close it and reconnect like any loss.
        this.#closeSocket(socket, NO_ANSWER_CLOSE.code, NO_ANSWER_CLOSE.reason);
        this.#lost(NO_ANSWER_CLOSE.code, NO_ANSWER_CLOSE.reason, true);
      }, 0);
    }, this.#liveness.timeoutMs);
  }

  #clearLiveness(): void {
    if (this.#livenessTimer !== undefined) clearTimeout(this.#livenessTimer);
    this.#livenessTimer = undefined;
  }

  async #afterClose(code: number, reason: string, opened: boolean): Promise<void> {
    const kind = kindOfWsCloseCode(code);
    if (kind === 'Unauthorized' && opened && this.#wanted && this.#options.refreshCredential) {
      // The token expired while the socket was open: get a fresh one and come back.
      const refreshed = await this.#options.refreshCredential().then(
        () => true,
        () => false,
      );
      if (refreshed) {
        this.#setStatus('connecting');
        this.#scheduleReconnect();
        return;
      }
    }
    if (AUTH_KINDS.has(kind)) {
      this.#authFailed(
        new SyncError(kind as ErrorKind, reason || `the relay closed the socket with ${code}`),
      );
      return;
    }
    if (!this.#wanted) return;
    this.#setStatus('connecting');
    if (!opened && this.#options.checkAuth) {
      const verdict = await this.#options.checkAuth().catch(() => 'unknown' as const);
      if (verdict === 'unauthorized') {
        this.#authFailed(new SyncError('Unauthorized', 'the relay refused the API key'));
        return;
      }
    }
    this.#scheduleReconnect();
  }

  #authFailed(error: SyncError): void {
    this.#wanted = false;
    this.#clearTimer();
    this.#setStatus('auth-failed');
    this.#events.emit('auth-error', error);
  }

  #scheduleReconnect(): void {
    if (!this.#wanted) return;
    this.#clearTimer();
    const delay = backoffDelay(this.#attempt++, this.#backoff, this.#options.random);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#connect();
    }, delay);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #closeSocket(socket: WebSocketLike, code: number, reason: string): void {
    socket.onopen = null;
    socket.onmessage = null;
    socket.onclose = null;
    socket.onerror = () => undefined;
    try {
      socket.close(code, reason);
    } catch {
      // Closing a socket that never opened may throw in some implementations; it is gone either way.
    }
  }

  #setStatus(status: ConnectionStatus): void {
    if (this.#status === status) return;
    this.#status = status;
    this.#events.emit('status', status);
  }
}

/** True for the relay's pong (a connection-level frame, empty doc name): consumed here. */
function isPong(bytes: Uint8Array): boolean {
  if (bytes[0] !== 0) return false;
  try {
    return decodeMuxFrame(bytes).message.type === 'pong';
  } catch {
    return false; // not ours to judge: the client's frame handler reports malformed frames
  }
}

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}
