import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ResendSchedule } from './resend-schedule.ts';

// Timers are the edge of this unit: faked, so the test says when an edit goes out again
// without waiting for it.

const BACKOFF = { initialMs: 100, maxMs: 400, factor: 2 };
const ACK_TIMEOUT = 1_000;

function setup(state = { online: true, pending: true }): { schedule: ResendSchedule; resends: boolean[] } {
  const resends: boolean[] = [];
  const schedule = new ResendSchedule(
    {
      canSend: () => state.online,
      hasPending: () => state.pending,
      resend: (forget) => resends.push(forget),
    },
    BACKOFF,
    ACK_TIMEOUT,
  );
  return { schedule, resends };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('ResendSchedule', () => {
  it('sends refused edits again after a growing backoff, and starts over after an ack', () => {
    const { schedule, resends } = setup();
    schedule.refused();
    schedule.refused(); // one retry at a time
    vi.advanceTimersByTime(100);
    expect(resends).toEqual([false]);
    schedule.refused();
    vi.advanceTimersByTime(99);
    // The second delay is at least half of 200 ms; by 200 ms it has run.
    vi.advanceTimersByTime(101);
    expect(resends).toEqual([false, false]);
    schedule.acked();
    schedule.refused();
    vi.advanceTimersByTime(100);
    expect(resends).toEqual([false, false, false]);
  });

  it('sends in-flight edits again (forgetting the old requests) when nothing answered them', () => {
    const { schedule, resends } = setup();
    schedule.sent();
    vi.advanceTimersByTime(ACK_TIMEOUT);
    expect(resends).toEqual([true]);
    // Still unanswered: again, one timeout later.
    vi.advanceTimersByTime(ACK_TIMEOUT);
    expect(resends).toEqual([true, true]);
  });

  it('leaves a slow but answering relay alone, and stops when nothing is pending', () => {
    const state = { online: true, pending: true };
    const { schedule, resends } = setup(state);
    schedule.sent();
    vi.advanceTimersByTime(ACK_TIMEOUT / 2);
    schedule.acked();
    vi.advanceTimersByTime(ACK_TIMEOUT / 2);
    expect(resends).toEqual([]);
    state.pending = false;
    vi.advanceTimersByTime(10 * ACK_TIMEOUT);
    expect(resends).toEqual([]);
  });

  it('does nothing once stopped (socket gone: the next one sends everything) or while offline', () => {
    const state = { online: true, pending: true };
    const { schedule, resends } = setup(state);
    schedule.sent();
    schedule.refused();
    schedule.stop();
    vi.advanceTimersByTime(10 * ACK_TIMEOUT);
    expect(resends).toEqual([]);
    state.online = false;
    schedule.sent();
    schedule.refused();
    vi.advanceTimersByTime(10 * ACK_TIMEOUT);
    expect(resends).toEqual([]);
  });
});
