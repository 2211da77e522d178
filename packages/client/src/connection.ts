import { type ErrorKind, kindOfWsCloseCode, SyncError } from '@scopesync/core';
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
  readonly #events = new Emitter<ConnectionEvents>();
  #socket: WebSocketLike | undefined;
  #status: ConnectionStatus = 'offline';
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wanted = false;
  /** Counts connection attempts, so a credential that arrives after a stop() opens nothing. */
  #attempts = 0;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
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
      this.#setStatus('online');
      this.#events.emit('open', undefined);
    };
    socket.onmessage = (event) => {
      if (this.#socket !== socket) return;
      const bytes = toBytes(event.data);
      if (bytes) this.#events.emit('message', bytes);
    };
    socket.onerror = () => {
      // onclose follows and decides what to do.
    };
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      if (opened) this.#events.emit('close', { code: event.code, reason: event.reason });
      void this.#afterClose(event.code, event.reason, opened);
    };
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

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}
