import { type BackoffOptions, backoffDelay } from './backoff.ts';
import { RESEND_BACKOFF } from './resend-schedule.ts';

/**
 * When a doc subscribes again on the same socket after the relay ended it with a transient
 * error (its store was down while it loaded the doc: Unavailable). The socket itself stays
 * up — other docs share it — so waiting for "the next socket" left the doc unsubscribed, and
 * its reader blind to every later edit, for as long as the connection lasted (chaos issue #16,
 * PostgreSQL stopped). Backoff as for resends; reset once a subscription synced.
 */
export class ResubscribeSchedule {
  readonly #resubscribe: () => void;
  readonly #backoff: BackoffOptions;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;

  /** `resubscribe` runs after the delay; it checks itself whether subscribing still makes sense. */
  constructor(resubscribe: () => void, backoff = RESEND_BACKOFF) {
    this.#resubscribe = resubscribe;
    this.#backoff = backoff;
  }

  /** The relay ended the subscription for now: subscribe again after a backoff. */
  ended(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#resubscribe();
      },
      backoffDelay(this.#attempt++, this.#backoff),
    );
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** A subscription synced: the next failure starts from the first delay again. */
  synced(): void {
    this.#attempt = 0;
  }

  /** The socket went (the next one subscribes anyway) or the handle closed. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
