import { describe, expect, it } from 'vitest';
import { NarrowingFence } from './narrowing-fence.ts';

/** A fence on a clock the test moves; its sleeps move the clock too and are recorded. */
function fenceAt(): { fence: NarrowingFence; clock: { now: number }; slept: number[]; errors: string[] } {
  const clock = { now: 0 };
  const slept: number[] = [];
  const errors: string[] = [];
  const fence = new NarrowingFence({
    leaseMs: 100,
    retryForMs: 50,
    retryEveryMs: 20,
    now: () => clock.now,
    sleep: async (ms) => {
      slept.push(ms);
      clock.now += ms;
    },
    log: (_level, message) => errors.push(message),
  });
  return { fence, clock, slept, errors };
}

describe('NarrowingFence', () => {
  it('answers at once when nothing was published', async () => {
    const { fence, slept } = fenceAt();
    await fence.settle();
    expect(slept).toEqual([]);
  });

  it('waits for the acknowledgement, then the lease after it', async () => {
    const { fence, clock, slept } = fenceAt();
    let acknowledge!: (ok: boolean) => void;
    fence.track(() => new Promise<boolean>((resolve) => (acknowledge = resolve)));
    let settled = false;
    const settling = fence.settle().then(() => {
      settled = true;
    });
    clock.now = 30; // Redis answers the PUBLISH at 30
    acknowledge(true);
    await settling;
    expect(settled).toBe(true);
    expect(slept).toEqual([100]);
    expect(clock.now).toBe(130);
    // Once the lease after it has passed, a later answer does not wait again.
    await fence.settle();
    expect(slept).toEqual([100]);
  });

  it('retries a publication that failed, and waits the lease after the one that got through', async () => {
    const { fence, clock, slept } = fenceAt();
    const answers = [false, false, true];
    let tries = 0;
    fence.track(async () => {
      tries++;
      return answers.shift() ?? true;
    });
    await fence.settle();
    expect(tries).toBe(3);
    expect(slept).toEqual([20, 20, 100]);
    expect(clock.now).toBe(140);
  });

  it('gives up after its bound, reports it, and still waits the lease', async () => {
    const { fence, clock, errors } = fenceAt();
    let tries = 0;
    fence.track(async () => {
      tries++;
      return false;
    });
    await fence.settle();
    expect(tries).toBe(4); // at 0, 20, 40, 60: past the 50 ms bound
    expect(errors).toEqual(['an access narrowing could not be published to the other relays']);
    expect(clock.now).toBe(160);
  });
});
