/**
 * Mutual exclusion by name: a use case that must check then write (If-Match, create-if-absent,
 * a share change) runs its critical section under the object's lock. One relay uses
 * {@link KeyedMutex} (in process); several relays need a shared implementation.
 */
export interface Locks {
  /** Runs `fn` once no other holder of `key` is running; resolves or rejects with it. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T>;
}
