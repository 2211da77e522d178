import { describe, expect, it } from 'vitest';
import { RateLimiter } from './rate-limiter.ts';

describe('RateLimiter', () => {
  it('allows a burst of capacity, then refills at the configured rate, per caller', () => {
    let now = 0;
    const limiter = new RateLimiter({ capacity: 3, refillPerSecond: 2 }, () => now);
    expect([1, 2, 3].map(() => limiter.take('a').ok)).toEqual([true, true, true]);
    expect(limiter.take('a')).toEqual({ ok: false, retryAfterSeconds: 1 });
    expect(limiter.take('b').ok).toBe(true);
    now = 500; // half a second: one token back
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a').ok).toBe(false);
    now = 60_000; // refills to capacity, never beyond
    expect([1, 2, 3, 4].map(() => limiter.take('a').ok)).toEqual([true, true, true, false]);
  });

  it('forgets the stalest buckets beyond maxBuckets', () => {
    const limiter = new RateLimiter({ capacity: 1, refillPerSecond: 0.001, maxBuckets: 2 }, () => 0);
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('b').ok).toBe(true);
    expect(limiter.take('c').ok).toBe(true); // drops a
    expect(limiter.take('a').ok).toBe(true); // a starts full again
    expect(limiter.take('c').ok).toBe(false);
  });

  it('holds no bucket for callers who went idle and refilled', () => {
    let now = 0;
    const limiter = new RateLimiter({ capacity: 4, refillPerSecond: 2 }, () => now);
    for (let i = 0; i < 100; i++) limiter.take(`idle-${i}`);
    now = 1000; // every one has refilled its token
    limiter.take('active');
    limiter.take('active');
    for (let i = 0; i < 60; i++) limiter.take('active');
    expect(limiter.size).toBe(1);
    // A dropped bucket is a full one: an idle caller still has its whole burst.
    expect([1, 2, 3, 4, 5].map(() => limiter.take('idle-0').ok)).toEqual([true, true, true, true, false]);
  });
});
