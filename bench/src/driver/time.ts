/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Milliseconds on the monotonic clock. */
export function now(): number {
  return performance.now();
}

/** Rejects with `what timed out` if `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Runs `task(i)` for i in [0, count) with at most `concurrency` in flight, stopping early
 * (with an error) at `deadlineMs` from now.
 */
export async function pool<T>(
  count: number,
  concurrency: number,
  deadlineMs: number,
  task: (i: number) => Promise<T>,
): Promise<T[]> {
  const results = new Array<T>(count);
  const end = now() + deadlineMs;
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < count && !failed) {
      if (now() > end) throw new Error(`gave up after ${deadlineMs} ms with ${next}/${count} started`);
      const i = next++;
      try {
        results[i] = await task(i);
      } catch (error) {
        // Stop the other workers from starting more work after the first failure.
        failed = true;
        throw error;
      }
    }
  };
  const outcomes = await Promise.allSettled(Array.from({ length: Math.min(concurrency, count) }, worker));
  const failure = outcomes.find((o) => o.status === 'rejected');
  if (failure) throw failure.reason;
  return results;
}
