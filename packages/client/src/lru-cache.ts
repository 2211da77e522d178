/**
 * A least-recently-used map with a fixed capacity. `onEvict` runs for every entry that leaves
 * because of capacity or {@link LruCache.delete} / {@link LruCache.clear}, so an entry that
 * holds a resource (an open doc handle) can release it.
 */
export class LruCache<K, V> {
  readonly #capacity: number;
  readonly #entries = new Map<K, V>();
  readonly #onEvict: ((key: K, value: V) => void) | undefined;

  constructor(capacity: number, onEvict?: (key: K, value: V) => void) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('LRU capacity must be a positive integer');
    this.#capacity = capacity;
    this.#onEvict = onEvict;
  }

  /** The number of entries. */
  get size(): number {
    return this.#entries.size;
  }

  /** The value under `key`, marking it most recently used. */
  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    return value;
  }

  /** True when `key` is present (does not touch recency). */
  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /** Stores `value` as most recently used, evicting the least recently used entry past capacity. */
  set(key: K, value: V): void {
    const previous = this.#entries.get(key);
    this.#entries.delete(key);
    this.#entries.set(key, value);
    if (previous !== undefined && previous !== value) this.#onEvict?.(key, previous);
    while (this.#entries.size > this.#capacity) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      const evicted = this.#entries.get(oldest.value) as V;
      this.#entries.delete(oldest.value);
      this.#onEvict?.(oldest.value, evicted);
    }
  }

  /** Removes `key`, running `onEvict` for it. */
  delete(key: K): boolean {
    const value = this.#entries.get(key);
    if (value === undefined) return false;
    this.#entries.delete(key);
    this.#onEvict?.(key, value);
    return true;
  }

  /** Removes every entry, running `onEvict` for each. */
  clear(): void {
    const all = [...this.#entries];
    this.#entries.clear();
    for (const [key, value] of all) this.#onEvict?.(key, value);
  }
}
