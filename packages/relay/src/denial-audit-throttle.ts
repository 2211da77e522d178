import { RateLimiter } from './rate-limiter.ts';

/** Options of a {@link DenialAuditThrottle}. */
export interface DenialAuditThrottleOptions {
  /** How long repeats of one (caller, action, target) denial are counted instead of appended, in ms. Default 60 s. */
  readonly windowMs?: number;
  /** Distinct denials remembered at most; the least recent are forgotten (their next repeat is appended). Default 10 000. */
  readonly maxTracked?: number;
  /** Denial entries one caller may append per second, over all its targets (burst: ten times as many). Default 5. */
  readonly perCallerPerSecond?: number;
  /** Epoch milliseconds; injectable for tests. */
  readonly now?: () => number;
}

/** What to do with one denial: append it (telling how many repeats were folded into it), or count it only. */
export type DenialVerdict = { readonly append: true; readonly folded: number } | { readonly append: false };

interface Seen {
  at: number;
  folded: number;
}

/**
 * Keeps denied attempts from filling the audit log: the first denial of a (caller, action,
 * target) is appended, its repeats within the window are only counted and the count is folded
 * into the next entry appended for it; and one caller (all guests are one caller) appends at
 * most a few denial entries per second over all its targets. Allowed actions are never throttled.
 */
export class DenialAuditThrottle {
  readonly #windowMs: number;
  readonly #maxTracked: number;
  readonly #now: () => number;
  readonly #perCaller: RateLimiter;
  /** Insertion order is recency order (a use re-inserts), so the first entry is the stalest. */
  readonly #seen = new Map<string, Seen>();

  constructor(options: DenialAuditThrottleOptions = {}) {
    this.#windowMs = options.windowMs ?? 60_000;
    this.#maxTracked = options.maxTracked ?? 10_000;
    this.#now = options.now ?? Date.now;
    const rate = options.perCallerPerSecond ?? 5;
    this.#perCaller = new RateLimiter({ capacity: 10 * rate, refillPerSecond: rate }, () => this.#now());
  }

  /** Whether the denial of `action` on `target` by `caller` is appended now. */
  admit(caller: string, action: string, target: string): DenialVerdict {
    const key = `${caller}\u0000${action}\u0000${target}`;
    const now = this.#now();
    const seen = this.#seen.get(key);
    this.#seen.delete(key);
    if (seen !== undefined && now - seen.at < this.#windowMs) {
      seen.folded += 1;
      this.#seen.set(key, seen);
      return { append: false };
    }
    const folded = seen?.folded ?? 0;
    if (!this.#perCaller.take(caller).ok) {
      // Over the caller's budget: remember it as a repeat, so the count reaches a later entry.
      this.#seen.set(key, { at: seen?.at ?? now, folded: folded + 1 });
      this.#trim();
      return { append: false };
    }
    this.#seen.set(key, { at: now, folded: 0 });
    this.#trim();
    return { append: true, folded };
  }

  #trim(): void {
    while (this.#seen.size > this.#maxTracked) {
      const stalest = this.#seen.keys().next();
      if (stalest.done) return;
      this.#seen.delete(stalest.value);
    }
  }
}
