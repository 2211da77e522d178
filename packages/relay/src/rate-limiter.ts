/** Options of a {@link RateLimiter}: a token bucket per caller. */
export interface RateLimitOptions {
  /** Tokens a bucket holds: the burst a caller may send at once. */
  readonly capacity: number;
  /** Tokens added per second: the sustained rate. */
  readonly refillPerSecond: number;
  /** Buckets kept at most; the least recently used are dropped (a dropped bucket starts full). */
  readonly maxBuckets?: number;
}

/**
 * The defaults: generous enough that tests, benchmarks and a busy web app never notice
 * them, tight enough that one key cannot monopolise the relay.
 */
export const DEFAULT_RATE_LIMIT: Required<RateLimitOptions> = {
  capacity: 20_000,
  refillPerSecond: 10_000,
  maxBuckets: 100_000,
};

/** How many of the stalest buckets each take looks at: more than one, so dropping outpaces creating. */
const REFILLED_CHECKS_PER_TAKE = 2;

/** The answer of {@link RateLimiter.take}. */
export type RateVerdict = { readonly ok: true } | { readonly ok: false; readonly retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets by caller id (an API key's hash, or an address for guests). One relay keeps
 * them in memory ({@link RateLimiter}); several relays need shared buckets, so a take may be async.
 */
export interface RateLimitBuckets {
  /** Takes `cost` tokens from `id`'s bucket, or says how long to wait. */
  take(id: string, cost?: number): RateVerdict | Promise<RateVerdict>;
}

/** The in-memory {@link RateLimitBuckets}: a token bucket per caller id, the least recently used dropped past a bound. */
export class RateLimiter implements RateLimitBuckets {
  readonly #options: Required<RateLimitOptions>;
  readonly #now: () => number;
  /** Insertion order is recency order: a used bucket is re-inserted, so the first is the stalest. */
  readonly #buckets = new Map<string, Bucket>();

  /** Buckets held now: callers that took tokens lately and have not refilled since. */
  get size(): number {
    return this.#buckets.size;
  }

  /** `now` is in milliseconds (monotonic by default), injectable for tests. */
  constructor(options: Partial<RateLimitOptions> = {}, now: () => number = () => performance.now()) {
    this.#options = { ...DEFAULT_RATE_LIMIT, ...definedOnly(options) };
    if (!(this.#options.capacity >= 1) || !(this.#options.refillPerSecond > 0)) {
      throw new RangeError('a rate limit needs capacity >= 1 and refillPerSecond > 0');
    }
    this.#now = now;
  }

  /** Takes `cost` tokens from `id`'s bucket, or says how long to wait. */
  take(id: string, cost = 1): RateVerdict {
    const now = this.#now();
    const { capacity, refillPerSecond, maxBuckets } = this.#options;
    const bucket = this.#buckets.get(id) ?? { tokens: capacity, at: now };
    this.#buckets.delete(id);
    bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.at) / 1000) * refillPerSecond);
    bucket.at = now;
    this.#buckets.set(id, bucket);
    this.#dropRefilled(now);
    if (this.#buckets.size > maxBuckets) {
      const stalest = this.#buckets.keys().next();
      if (!stalest.done) this.#buckets.delete(stalest.value);
    }
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((cost - bucket.tokens) / refillPerSecond)) };
  }

  /**
   * Drops the stalest buckets that have refilled to capacity: one is the same as none (a missing
   * bucket starts full), and a caller who went idle should not keep one — the sync server takes
   * a token per frame of every socket, so otherwise each idle socket's user held a bucket.
   */
  #dropRefilled(now: number): void {
    const { capacity, refillPerSecond } = this.#options;
    for (let i = 0; i < REFILLED_CHECKS_PER_TAKE; i++) {
      const stalest = this.#buckets.entries().next();
      if (stalest.done) return;
      const [id, bucket] = stalest.value;
      if (bucket.at === now || bucket.tokens + ((now - bucket.at) / 1000) * refillPerSecond < capacity)
        return;
      this.#buckets.delete(id);
    }
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
