/**
 * How many store reads a background sweep (the periodic re-check of every open socket, the
 * cluster feed's idle comparison with the store) keeps in flight. A sweep that starts them all
 * at once queues hundreds of reads in front of the writes in the store's connection pool (10 by
 * default), and a re-check holds its document's lane while its read waits there: every live
 * update of that document waits with it. A few at a time keeps each lane held for one read.
 */
export const SWEEP_CONCURRENCY = 4;

/**
 * Runs `work` for every item with at most `limit` runs under way at once, in order of the
 * items; resolves once every run has settled, rejecting then with the first error if any.
 */
export async function forEachBounded<T>(
  items: Iterable<T>,
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  const iterator = items[Symbol.iterator]();
  let failure: { readonly error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    for (let next = iterator.next(); next.done !== true; next = iterator.next()) {
      try {
        await work(next.value);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.floor(limit)) }, worker));
  if (failure !== null) throw (failure as { readonly error: unknown }).error;
}
