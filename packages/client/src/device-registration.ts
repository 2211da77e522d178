import { SyncError } from '@scopesync/core';
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff.ts';
import type { Identity } from './identity.ts';

/** What a {@link DeviceRegistration} needs. */
export interface DeviceRegistrationOptions {
  /** One attempt at POST /keys; rejects Unavailable while the relay is unreachable. */
  readonly register: () => Promise<Identity>;
  /** The device is registered: the client swaps to the new identity and connects. */
  readonly registered: (identity: Identity) => void;
  /** The relay refused the registration for good (closed registration, a bad request). */
  readonly failed: (error: SyncError) => void;
  readonly backoff?: Partial<BackoffOptions> | undefined;
  readonly random?: (() => number) | undefined;
}

/**
 * Registers a device that started with a provisional identity (first start offline), retrying
 * with the reconnect backoff while the relay is unreachable and stopping for good on any other
 * answer. One attempt at a time; {@link stop} pauses it (the client went offline on purpose).
 */
export class DeviceRegistration {
  readonly #options: DeviceRegistrationOptions;
  readonly #backoff: BackoffOptions;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #wanted = false;
  #done = false;

  constructor(options: DeviceRegistrationOptions) {
    this.#options = options;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  }

  /** Starts (or resumes) trying; the first attempt is made at once. */
  start(): void {
    if (this.#done) return;
    this.#wanted = true;
    if (!this.#running && this.#timer === undefined) void this.#try();
  }

  /** Stops trying until {@link start}. */
  stop(): void {
    this.#wanted = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #try(): Promise<void> {
    this.#timer = undefined;
    if (!this.#wanted || this.#done) return;
    this.#running = true;
    try {
      const identity = await this.#options.register();
      this.#done = true;
      this.#options.registered(identity);
    } catch (error) {
      if (error instanceof SyncError && error.kind === 'Unavailable') {
        if (this.#wanted) {
          const delay = backoffDelay(this.#attempt++, this.#backoff, this.#options.random);
          this.#timer = setTimeout(() => void this.#try(), delay);
        }
      } else {
        this.#done = true;
        this.#options.failed(
          error instanceof SyncError
            ? error
            : new SyncError('Internal', 'registering this device failed', { cause: error }),
        );
      }
    } finally {
      this.#running = false;
    }
  }
}
