import { afterEach, describe, expect, it, vi } from 'vitest';
import { ExpiryTimers } from './expiry-timers.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe('ExpiryTimers', () => {
  it('fires at the deadline, at once when it passed, never once disarmed', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const timers = new ExpiryTimers<string>();
    const fired: string[] = [];
    timers.arm('a', 1_005_000, () => fired.push('a'));
    timers.arm('b', 1_005_000, () => fired.push('b'));
    timers.arm('past', 999_000, () => fired.push('past'));
    expect(fired).toEqual(['past']);
    timers.disarm('b');
    vi.advanceTimersByTime(4_999);
    expect(fired).toEqual(['past']);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['past', 'a']);
  });

  it('reaches deadlines beyond the longest Node timer (about 24.8 days) in steps', () => {
    vi.useFakeTimers({ now: 0 });
    const timers = new ExpiryTimers<string>();
    const fired: string[] = [];
    const sixtyDays = 60 * 24 * 3600 * 1000;
    timers.arm('long', sixtyDays, () => fired.push('long'));
    vi.advanceTimersByTime(sixtyDays - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['long']);
  });
});
