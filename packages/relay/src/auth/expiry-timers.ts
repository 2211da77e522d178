/** Longest delay a Node timer takes (about 24.8 days); later deadlines are reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * One timer per item that fires at an absolute time (a token's `exp`): how a socket that
 * authenticated with a token is closed when the token expires, while it is open.
 */
export class ExpiryTimers<T> {
  readonly #timers = new Map<T, NodeJS.Timeout>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Calls `expire` at `at` (epoch ms; at once when past) unless {@link disarm}ed first. */
  arm(item: T, at: number, expire: () => void): void {
    this.disarm(item);
    const step = (): void => {
      const left = at - this.#now();
      if (left <= 0) {
        this.#timers.delete(item);
        expire();
        return;
      }
      const timer = setTimeout(step, Math.min(left, MAX_TIMER_MS));
      timer.unref();
      this.#timers.set(item, timer);
    };
    step();
  }

  /** Forgets the item's timer (the socket closed first). Idempotent. */
  disarm(item: T): void {
    const timer = this.#timers.get(item);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#timers.delete(item);
  }

  /** Forgets every timer. */
  clear(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }
}
