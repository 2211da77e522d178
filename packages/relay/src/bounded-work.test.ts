import { describe, expect, it } from 'vitest';
import { forEachBounded } from './bounded-work.ts';

/** Lets pending promise callbacks run. */
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('forEachBounded', () => {
  it('runs every item, never more than the limit at once', async () => {
    let running = 0;
    let most = 0;
    const done: number[] = [];
    await forEachBounded(
      Array.from({ length: 25 }, (_, i) => i),
      4,
      async (i) => {
        running += 1;
        most = Math.max(most, running);
        await tick();
        running -= 1;
        done.push(i);
      },
    );
    expect(most).toBe(4);
    expect(done.sort((x, y) => x - y)).toEqual(Array.from({ length: 25 }, (_, i) => i));
  });

  it('finishes the other items before it rejects with the first failure', async () => {
    const done: number[] = [];
    const run = forEachBounded([1, 2, 3, 4, 5], 2, async (i) => {
      await tick();
      if (i === 2 || i === 4) throw new Error(`item ${i}`);
      done.push(i);
    });
    await expect(run).rejects.toThrow('item 2');
    expect(done).toEqual([1, 3, 5]);
  });

  it('runs one at a time with a limit below 1', async () => {
    let running = 0;
    let most = 0;
    await forEachBounded([1, 2, 3], 0, async () => {
      running += 1;
      most = Math.max(most, running);
      await tick();
      running -= 1;
    });
    expect(most).toBe(1);
  });
});
