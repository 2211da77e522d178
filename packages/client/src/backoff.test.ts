import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.ts';

describe('backoffDelay', () => {
  const options = { initialMs: 100, maxMs: 1000, factor: 2 };

  it('grows exponentially up to the cap, with jitter in the upper half', () => {
    const caps = [100, 200, 400, 800, 1000, 1000];
    caps.forEach((cap, attempt) => {
      expect(backoffDelay(attempt, options, () => 0)).toBe(cap / 2);
      expect(backoffDelay(attempt, options, () => 0.999999)).toBe(cap);
    });
  });

  it('spreads clients that failed at the same moment', () => {
    let x = 0;
    const random = (): number => {
      x = (x * 9301 + 49297) % 233280;
      return x / 233280;
    };
    const delays = new Set(Array.from({ length: 20 }, () => backoffDelay(5, options, random)));
    expect(delays.size).toBeGreaterThan(10);
  });
});
