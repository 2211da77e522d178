import type { Locks } from './locks.ts';

/**
 * The in-process {@link Locks}: async critical sections one at a time per key (a document
 * name), so that a check-then-write (If-Match, blob versions, create-if-absent) is not
 * interleaved with another write of the same object on this relay. Keys without waiters are
 * forgotten.
 */
export class KeyedMutex implements Locks {
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `fn` after every earlier `run` of the same key has settled; resolves or rejects with it. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
