import type { SyncError } from '@scopesync/core';

/**
 * Local edits a doc dropped for good — refused by the relay, discarded as read-only, or never
 * stored — so that `whenAcked` can tell an outbox emptied by dropping from one emptied by acks:
 * each drop is reported once, by the next `whenAcked` to settle.
 */
export class DroppedEdits {
  #count = 0;
  #reported = 0;
  #last: SyncError | null = null;

  /** Records edits dropped because of `error`. */
  add(error: SyncError): void {
    this.#count += 1;
    this.#last = error;
  }

  /** The error of the latest drop not reported yet (and marks it reported); null when none. */
  takeUnreported(): SyncError | null {
    const unreported = this.#count !== this.#reported;
    this.#reported = this.#count;
    return unreported ? this.#last : null;
  }
}
