import { SyncError } from '@scopesync/core';
import {
  DEFAULT_RATE_LIMIT,
  type RateLimitBuckets,
  RateLimiter,
  type RateLimitOptions,
  type RateVerdict,
} from '../rate-limiter.ts';
import { newRedisClient, type RedisClient } from './redis-client.ts';

/** Options of {@link RedisRateLimitBuckets.connect}. */
export interface RedisRateLimitOptions extends Partial<RateLimitOptions> {
  readonly url: string;
  /** Key prefix, so deployments sharing a Redis keep their buckets apart. Default `scopesync`. */
  readonly prefix?: string | undefined;
}

// One token bucket per id in a Redis hash {tokens, at}, refilled and taken atomically by a
// script, with an expiry so idle buckets vanish. Time comes from Redis, so relays with skewed
// clocks share one view.
const TAKE = `
local key = KEYS[1]
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(b[1]) or capacity
local at = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + (now - at) / 1000 * rate)
local ok = 0
if tokens >= cost then
  tokens = tokens - cost
  ok = 1
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', key, math.ceil(capacity / rate * 1000) + 1000)
if ok == 1 then return -1 end
return math.max(1, math.ceil((cost - tokens) / rate))
`;

type Client = RedisClient;

/**
 * {@link RateLimitBuckets} shared by every relay through Redis, so a caller's budget is the
 * same whichever relay it reaches. While Redis is away each relay falls back to its own
 * in-memory buckets: slower limiting, never refusing everyone.
 */
export class RedisRateLimitBuckets implements RateLimitBuckets {
  readonly #client: Client;
  readonly #prefix: string;
  readonly #options: Required<RateLimitOptions>;
  readonly #fallback: RateLimiter;

  private constructor(client: Client, options: RedisRateLimitOptions) {
    this.#client = client;
    this.#prefix = `${options.prefix ?? 'scopesync'}:rate:`;
    this.#options = {
      capacity: options.capacity ?? DEFAULT_RATE_LIMIT.capacity,
      refillPerSecond: options.refillPerSecond ?? DEFAULT_RATE_LIMIT.refillPerSecond,
      maxBuckets: options.maxBuckets ?? DEFAULT_RATE_LIMIT.maxBuckets,
    };
    this.#fallback = new RateLimiter(this.#options);
  }

  /** Connects; rejects with SyncError('Unavailable') when Redis cannot be reached. */
  static async connect(options: RedisRateLimitOptions): Promise<RedisRateLimitBuckets> {
    const client = await newRedisClient(options.url, 'scopesync-rate-limit');
    client.on('error', () => undefined); // reported by the transport; takes fall back meanwhile
    try {
      await client.connect();
    } catch (error) {
      client.destroy();
      throw new SyncError('Unavailable', `cannot reach Redis for rate limits: ${String(error)}`, {
        cause: error,
      });
    }
    return new RedisRateLimitBuckets(client, options);
  }

  async take(id: string, cost = 1): Promise<RateVerdict> {
    try {
      const { capacity, refillPerSecond } = this.#options;
      const wait = Number(
        await this.#client.eval(TAKE, {
          keys: [this.#prefix + id],
          arguments: [String(capacity), String(refillPerSecond), String(cost)],
        }),
      );
      return wait < 0 ? { ok: true } : { ok: false, retryAfterSeconds: wait };
    } catch {
      return this.#fallback.take(id, cost);
    }
  }

  /** Disconnects. Idempotent. */
  async close(): Promise<void> {
    if (this.#client.isOpen) await this.#client.close();
  }
}
