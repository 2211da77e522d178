import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisRateLimitBuckets } from './redis-rate-limit.ts';

// Needs Redis 7 on 127.0.0.1:6379; each test uses its own key prefix.
const REDIS_URL = process.env.SCOPESYNC_REDIS_URL ?? 'redis://127.0.0.1:6379';
const open: RedisRateLimitBuckets[] = [];
afterEach(async () => {
  for (const b of open.splice(0)) await b.close();
});

async function buckets(prefix: string): Promise<RedisRateLimitBuckets> {
  const b = await RedisRateLimitBuckets.connect({
    url: REDIS_URL,
    prefix,
    capacity: 5,
    refillPerSecond: 0.01,
  });
  open.push(b);
  return b;
}

describe('RedisRateLimitBuckets', () => {
  it('shares one budget between relays', async () => {
    const prefix = `test-${randomBytes(6).toString('hex')}`;
    const [a, b] = [await buckets(prefix), await buckets(prefix)];
    const verdicts = [];
    for (let i = 0; i < 6; i++) verdicts.push(await (i % 2 === 0 ? a : b).take('key:caller'));
    expect(verdicts.slice(0, 5).every((v) => v.ok)).toBe(true);
    expect(verdicts[5]).toMatchObject({ ok: false });
    // Another caller has its own bucket.
    expect(await a.take('key:other')).toEqual({ ok: true });
  });
});
