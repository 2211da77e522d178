/** A map from event name to the argument its listeners receive (an interface of named fields). */
export type EventMap = object;

/** Removes the listener it was returned for. Calling it twice is harmless. */
export type Unsubscribe = () => void;

/**
 * A small typed event emitter. Listener errors are reported to `onListenerError` instead of
 * breaking the emitter's caller: a faulty app listener must not stop a sync loop.
 */
export class Emitter<Events extends EventMap> {
  readonly #listeners = new Map<keyof Events, Set<(value: never) => void>>();
  readonly #onListenerError: (error: unknown) => void;

  constructor(onListenerError: (error: unknown) => void = defaultListenerError) {
    this.#onListenerError = onListenerError;
  }

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): Unsubscribe {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    const entry = listener as (value: never) => void;
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  /** Removes a listener added with {@link on} (the lib0 `Observable` style); unknown ones are ignored. */
  off<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): void {
    this.#listeners.get(event)?.delete(listener as (value: never) => void);
  }

  /** Calls every listener of `event` with `value`. */
  emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as (value: Events[K]) => void)(value);
      } catch (error) {
        this.#onListenerError(error);
      }
    }
  }

  /** The number of listeners of `event`. */
  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /** Removes every listener. */
  clear(): void {
    this.#listeners.clear();
  }
}

function defaultListenerError(error: unknown): void {
  console.error('scopesync: an event listener threw', error);
}
