import type { EventBus, RelayEventHandler } from './event-bus.ts';
import { orderingKeyOf, type RelayEvent, type RelayEventType } from './relay-events.ts';

/** Where the bus reports a handler that threw. */
export type EventBusLog = (message: string, context: Record<string, unknown>) => void;

/** Options of a {@link LocalEventBus}. */
export interface LocalEventBusOptions {
  /** Where a failing handler is reported. Default: a JSON line on stderr. */
  readonly log?: EventBusLog | undefined;
}

type AnyHandler = (event: RelayEvent) => void | Promise<void>;

const defaultLog: EventBusLog = (message, context) => {
  process.stderr.write(
    `${JSON.stringify({ level: 'error', message, ...context, error: String(context.error) })}\n`,
  );
};

/**
 * The in-process {@link EventBus}: one relay, no transport. Each ordering key has a lane; an
 * event whose lane is idle is handled synchronously (the hot path: a live update reaches its
 * sockets without a microtask per event), otherwise it queues behind the lane's work.
 */
export class LocalEventBus implements EventBus {
  readonly #handlers = new Map<RelayEventType, Set<AnyHandler>>();
  /** The tail of each busy lane; a lane without an entry is idle. */
  readonly #lanes = new Map<string, Promise<void>>();
  /** When each event that queued behind its lane was published (see `publishedAt`). */
  readonly #queuedAt = new WeakMap<RelayEvent, number>();
  readonly #log: EventBusLog;
  #closed = false;

  constructor(options: LocalEventBusOptions = {}) {
    this.#log = options.log ?? defaultLog;
  }

  on<T extends RelayEventType>(type: T, handler: RelayEventHandler<T>): () => void {
    let set = this.#handlers.get(type);
    if (!set) {
      set = new Set();
      this.#handlers.set(type, set);
    }
    const h = handler as AnyHandler;
    set.add(h);
    return () => {
      set.delete(h);
    };
  }

  publish(event: RelayEvent): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const key = orderingKeyOf(event);
    if (!this.#lanes.has(key)) {
      const pending = this.#deliver(event);
      if (pending === null) return Promise.resolve();
      return this.#occupy(key, pending);
    }
    this.#queuedAt.set(event, performance.now());
    return this.#enqueue(key, async () => {
      await this.#deliver(event);
    });
  }

  publishedAt(event: RelayEvent): number | undefined {
    return this.#queuedAt.get(event);
  }

  serialize<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#lanes.get(key);
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    // The lane is taken now: whatever is published for it meanwhile waits until `fn` has settled.
    this.#occupy(key, previous === undefined ? settled : previous.then(() => settled));
    const run = (): Promise<T> => {
      let result: Promise<T>;
      try {
        result = fn();
      } catch (error) {
        result = Promise.reject(error);
      }
      result.then(settle, settle);
      return result;
    };
    // An idle lane (a socket's admission, mostly): `fn` starts in the caller's turn, not a chain
    // of microtasks later.
    return previous === undefined ? run() : previous.then(run);
  }

  laneIdle(key: string): boolean {
    return !this.#lanes.has(key);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#lanes.values()]);
  }

  /**
   * Calls every handler of the event. Returns null when all of them finished synchronously,
   * else a promise that settles when the async ones have. Never throws or rejects.
   */
  #deliver(event: RelayEvent): Promise<void> | null {
    const handlers = this.#handlers.get(event.type);
    if (!handlers || handlers.size === 0) return null;
    let waits: Promise<void>[] | null = null;
    for (const handler of [...handlers]) {
      try {
        const result = handler(event);
        if (result instanceof Promise) {
          waits ??= [];
          waits.push(result.catch((error: unknown) => this.#report(event, error)));
        }
      } catch (error) {
        this.#report(event, error);
      }
    }
    return waits === null ? null : Promise.all(waits).then(() => undefined);
  }

  #report(event: RelayEvent, error: unknown): void {
    const name = 'name' in event ? event.name : undefined;
    this.#log('a relay event handler failed', { event: event.type, doc: name, error });
  }

  /** Marks the lane busy until `work` settles. */
  #occupy(key: string, work: Promise<void>): Promise<void> {
    const tail = work.finally(() => {
      if (this.#lanes.get(key) === tail) this.#lanes.delete(key);
    });
    this.#lanes.set(key, tail);
    return tail;
  }

  /** Runs `task` after everything already in the lane; never rejects. */
  #enqueue(key: string, task: () => Promise<void>): Promise<void> {
    const previous = this.#lanes.get(key) ?? Promise.resolve();
    const work = previous.then(task).catch((error: unknown) => {
      this.#log('a serialized relay task failed', { key, error });
    });
    return this.#occupy(key, work);
  }
}
