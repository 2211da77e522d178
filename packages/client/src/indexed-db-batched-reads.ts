/** One read waiting for the next batch. */
interface QueuedRead {
  readonly store: string;
  readonly query: IDBValidKey | IDBKeyRange;
  /** `getAll` reads every record in a range (at most `count`); `get` reads one record. */
  readonly kind: 'get' | 'getAll';
  readonly count: number | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Runs the reads of many callers in one read-only IndexedDB transaction each time, on a
 * native connection (the plain read connection, or Dexie's). A transaction costs far more than a request in it (a browser
 * schedules, and fake-indexeddb simulates, each one), and a page opening many documents at
 * once would otherwise pay one per document for its log and one for its record. The first
 * read starts at once; reads asked for while a batch is in flight wait for it to finish and
 * then go together, so a lone read is never delayed and a burst costs a few transactions.
 * Not for use inside a Dexie transaction: its own transaction would wait for that one to end.
 */
export class BatchedReads {
  readonly #database: () => Promise<IDBDatabase>;
  #queue: QueuedRead[] = [];
  #running = false;

  /** `database` resolves with the open native database (opening it on first use). */
  constructor(database: () => Promise<IDBDatabase>) {
    this.#database = database;
  }

  /** Every record of `store` in `range`, in key order; at most `count` when given. */
  getAll<T>(store: string, range: IDBKeyRange, count?: number): Promise<T[]> {
    return this.#enqueue(store, range, 'getAll', count) as Promise<T[]>;
  }

  /** The record of `store` under `key`, or undefined. */
  get<T>(store: string, key: IDBValidKey): Promise<T | undefined> {
    return this.#enqueue(store, key, 'get', undefined) as Promise<T | undefined>;
  }

  #enqueue(
    store: string,
    query: IDBValidKey | IDBKeyRange,
    kind: QueuedRead['kind'],
    count: number | undefined,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ store, query, kind, count, resolve, reject });
      // A microtask, so reads asked for in the same turn share the first transaction too.
      if (!this.#running) {
        this.#running = true;
        queueMicrotask(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      await this.#run(batch);
    }
    this.#running = false;
  }

  /** One transaction for the whole batch; every caller is answered once it has completed. */
  async #run(batch: readonly QueuedRead[]): Promise<void> {
    try {
      const db = await this.#database();
      const stores = [...new Set(batch.map((r) => r.store))];
      const tx = db.transaction(stores, 'readonly');
      const results: unknown[] = new Array(batch.length);
      batch.forEach((read, i) => {
        const source = tx.objectStore(read.store);
        const request = read.kind === 'get' ? source.get(read.query) : source.getAll(read.query, read.count);
        request.onsuccess = () => {
          results[i] = request.result;
        };
      });
      await new Promise<void>((resolve, reject) => {
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error ?? new Error('the read transaction was aborted'));
      });
      for (const [i, read] of batch.entries()) read.resolve(results[i]);
    } catch (error) {
      for (const read of batch) read.reject(error);
    }
  }
}
