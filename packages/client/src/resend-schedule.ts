import { type BackoffOptions, backoffDelay } from './backoff.ts';

/** Resend delays after the relay failed to store an edit: 250 ms, doubling, at most 10 s. */
export const RESEND_BACKOFF: BackoffOptions = Object.freeze({ initialMs: 250, maxMs: 10_000, factor: 2 });

/**
 * How long sent edits may go unanswered on a live socket before they are sent again, in ms.
 * Long enough for a relay under load; an edit is idempotent, so a resend costs only bytes.
 */
export const ACK_TIMEOUT_MS = 30_000;

/** What a {@link ResendSchedule} asks of its doc handle. */
export interface ResendHost {
  /** Whether edits can be sent now (online, subscribed read-write, not closed). */
  canSend(): boolean;
  /** Whether local edits wait for an ack. */
  hasPending(): boolean;
  /** Sends the outbox again. `forget`: first drop what is in flight (its answers never came). */
  resend(forget: boolean): void;
}

/**
 * When a doc's unacknowledged edits go out again on the same socket: after the relay refused
 * them with a transient error (its store failed the commit — with backoff), and when nothing
 * answered them for {@link ACK_TIMEOUT_MS} (a commit that hung, an answer lost). Without it an
 * edit the relay already delivered to other readers but never stored stayed "pending" until
 * the next edit or reconnect — forever on a quiet doc (chaos issue #16).
 */
export class ResendSchedule {
  readonly #host: ResendHost;
  readonly #backoff: BackoffOptions;
  readonly #ackTimeoutMs: number;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  /** An ack (or refusal) arrived since the watchdog was last armed. */
  #answered = false;

  constructor(host: ResendHost, backoff = RESEND_BACKOFF, ackTimeoutMs = ACK_TIMEOUT_MS) {
    this.#host = host;
    this.#backoff = backoff;
    this.#ackTimeoutMs = ackTimeoutMs;
  }

  /** Edits went out: make sure something notices if they are never answered. */
  sent(): void {
    if (this.#watchdog !== undefined) return;
    this.#answered = false;
    this.#watchdog = setTimeout(() => this.#check(), this.#ackTimeoutMs);
    unref(this.#watchdog);
  }

  /** The relay acked an edit: the store works again. */
  acked(): void {
    this.#attempt = 0;
    this.#answered = true;
  }

  /** The relay refused edits with an error worth retrying: send them again after a backoff. */
  refused(): void {
    this.#answered = true;
    if (this.#retry !== undefined) return;
    const delay = backoffDelay(this.#attempt++, this.#backoff);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (this.#host.canSend() && this.#host.hasPending()) this.#host.resend(false);
    }, delay);
    unref(this.#retry);
  }

  /** The socket went (the next one re-sends everything) or the handle closed: stop both timers. */
  stop(): void {
    clearTimeout(this.#retry);
    clearTimeout(this.#watchdog);
    this.#retry = undefined;
    this.#watchdog = undefined;
    this.#attempt = 0;
  }

  #check(): void {
    this.#watchdog = undefined;
    if (!this.#host.hasPending() || !this.#host.canSend()) return;
    // Answers still coming: the relay is slow, not silent. Look again later.
    if (!this.#answered) this.#host.resend(true);
    this.sent();
  }
}

/** Timers must not keep a Node process alive (browsers return a number: nothing to do). */
function unref(timer: ReturnType<typeof setTimeout>): void {
  (timer as { unref?: () => void }).unref?.();
}
