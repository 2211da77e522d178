import type { RelayEvent, RelayEventOf, RelayEventType } from './relay-events.ts';

/** Reacts to one event; may be async, and the bus then waits for it before the next event of the same ordering key. */
export type RelayEventHandler<T extends RelayEventType> = (event: RelayEventOf<T>) => void | Promise<void>;

/**
 * The relay's typed domain event bus: the one path by which a change reaches sockets, rooms
 * and caches, whether it happened on this relay or on another one.
 *
 * Contract, for every implementation:
 * - Events with the same ordering key (`orderingKeyOf`: a document's name, a credential, a
 *   user) reach handlers in publish order, and an async handler finishes before the next
 *   event of that key is handled. So an `access-changed` of a document is fully applied to
 *   its subscriptions before a later `doc-updated` of it is delivered to anyone.
 * - `publish` resolves once this relay's handlers have handled the event (and, for a shared
 *   implementation, once the event was handed to the transport). It never rejects because a
 *   handler failed: handler failures are reported to the bus's log.
 * - `serialize(key, fn)` runs `fn` in the ordering lane of `key`, between events: how a
 *   subscription decides its access without racing an access change of the same document.
 */
export interface EventBus {
  /** Publishes an event to every handler of its type (on every relay, for a shared bus). */
  publish(event: RelayEvent): Promise<void>;
  /** Registers a handler for one event type; returns the function that removes it. */
  on<T extends RelayEventType>(type: T, handler: RelayEventHandler<T>): () => void;
  /** Runs `fn` in the ordering lane of `key` (see `orderingKeyOf`); resolves or rejects with it. */
  serialize<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /**
   * Optional: whether nothing runs or waits in the lane of `key` now. Then work that finishes in
   * the caller's turn may skip {@link serialize}: no event of the lane can come between.
   */
  laneIdle?(key: string): boolean;
  /**
   * Optional: when an event that had to wait for its lane was published (`performance.now()`);
   * undefined for one handled as it was published (then it is now). Lets a handler tell which
   * store reads made meanwhile are newer than the event.
   */
  publishedAt?(event: RelayEvent): number | undefined;
  /** Stops delivering; waits for handlers in progress. Idempotent. */
  close(): Promise<void>;
}
