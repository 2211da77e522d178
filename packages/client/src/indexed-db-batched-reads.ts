import { DOC_ORDER_MAX, DocOrder } from './indexed-db-doc-order.ts';

/** One read waiting for the next batch. */
interface QueuedRead {
  readonly store: string;
  readonly query: IDBValidKey | IDBKeyRange;
  /**
   * `getAll` reads every record in a range (at most `count`); `get` reads one record; `log`
   * reads every row of one document's log (`query` is its name), sharing a request with the
   * logs of the documents next to it in the batch; `record` reads the record keyed
   * `[table, name]` (`query`), sharing a request with the records of the table's names next to
   * it.
   */
  readonly kind: 'get' | 'getAll' | 'log' | 'record';
  /** The table of a `record` read. */
  readonly table: string | undefined;
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
 * Within one, the whole logs of documents next to each other in key order share a request
 * ({@link log}), and so do their records in a table keyed by document name ({@link record}):
 * a request costs far more than a row, too.
 * Not for use inside a Dexie transaction: its own transaction would wait for that one to end.
 */
export class BatchedReads {
  readonly #database: () => Promise<IDBDatabase>;
  readonly #logs: LogLayout;
  /** Read with the first batch of several logs, then kept (see {@link DocOrder}). */
  #order: DocOrder | null = null;
  #queue: QueuedRead[] = [];
  #running = false;

  /**
   * `database` resolves with the open native database (opening it on first use); `logs` says
   * where the document logs that {@link log} reads lie.
   */
  constructor(database: () => Promise<IDBDatabase>, logs: LogLayout) {
    this.#database = database;
    this.#logs = logs;
  }

  /** Every row of `doc`'s log, in key order. */
  log<T extends LogRow>(doc: string): Promise<T[]> {
    return this.#enqueue(this.#logs.store, doc, 'log', undefined) as Promise<T[]>;
  }

  /** Every record of `store` in `range`, in key order; at most `count` when given. */
  getAll<T>(store: string, range: IDBKeyRange, count?: number): Promise<T[]> {
    return this.#enqueue(store, range, 'getAll', count) as Promise<T[]>;
  }

  /** The record of `store` under `key`, or undefined. */
  get<T>(store: string, key: IDBValidKey): Promise<T | undefined> {
    return this.#enqueue(store, key, 'get', undefined) as Promise<T | undefined>;
  }

  /**
   * The record of `store` keyed `[table, name]`, or undefined: a `get`, except that records of
   * names next to each other in the documents' key order (a table keyed by document name) share
   * one request.
   */
  record<T extends RecordRow>(store: string, table: string, name: string): Promise<T | undefined> {
    return this.#enqueue(store, name, 'record', undefined, table) as Promise<T | undefined>;
  }

  #enqueue(
    store: string,
    query: IDBValidKey | IDBKeyRange,
    kind: QueuedRead['kind'],
    count: number | undefined,
    table?: string,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ store, query, kind, count, table, resolve, reject });
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
      const logs = new Map<string, number[]>();
      const records = new Map<string, RecordReads>();
      batch.forEach((read, i) => {
        if (read.kind === 'log') addReader(logs, read.query as string, i);
        else if (read.kind === 'record') {
          const table = read.table as string;
          const key = `${read.store}\u0000${table}`;
          let reads = records.get(key);
          if (reads === undefined) {
            reads = { store: read.store, table, names: new Map() };
            records.set(key, reads);
          }
          addReader(reads.names, read.query as string, i);
        }
      });
      // A lone log or record (a page's first read) never waits for the order; a burst reads it once.
      const readOrder =
        this.#order === null && (logs.size > 1 || [...records.values()].some((r) => r.names.size > 1));
      const stores = new Set(batch.map((r) => r.store));
      if (readOrder) stores.add(this.#logs.order);
      const tx = db.transaction([...stores], 'readonly');
      const results: unknown[] = new Array(batch.length);
      const readRuns = (order: DocOrder | null): void => {
        if (logs.size > 0) this.#readLogs(tx, logs, order, results);
        for (const reads of records.values()) this.#readRecords(tx, reads, order, results);
      };
      if (readOrder) {
        const request = tx.objectStore(this.#logs.order).getAllKeys(null, DOC_ORDER_MAX);
        request.onsuccess = () => {
          this.#order = new DocOrder(request.result as string[]);
          readRuns(this.#order);
        };
      } else readRuns(this.#order);
      batch.forEach((read, i) => {
        if (read.kind === 'log' || read.kind === 'record') return;
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

  /**
   * One request per run of the names asked for in one table (see {@link record}): a `get` for
   * a name alone, else a `getAll` from the first name's record to the last one's, each reader
   * getting the record under its own name (or undefined).
   */
  #readRecords(tx: IDBTransaction, reads: RecordReads, order: DocOrder | null, results: unknown[]): void {
    const { table, names } = reads;
    const source = tx.objectStore(reads.store);
    const runs = runsOf(names.keys(), order);
    for (const run of runs) {
      const from = run[0] as string;
      if (run.length === 1) {
        const request = source.get([table, from]);
        request.onsuccess = () => {
          for (const i of names.get(from) ?? []) results[i] = request.result;
        };
        continue;
      }
      const range = this.#logs.keyRange.bound([table, from], [table, run[run.length - 1]]);
      const request = source.getAll(range);
      request.onsuccess = () => {
        // Only the names asked for: others in the range (stepped over, or unknown to the order) are dropped.
        for (const row of request.result as RecordRow[]) {
          for (const i of names.get(row.key) ?? []) results[i] = row;
        }
      };
    }
  }

  /**
   * One `getAll` per run of documents next to each other in `order` (each document alone
   * without one), from the first one's log to the last one's; each reader gets its document's
   * rows. Rows of a document between them that the order did not know of are dropped here.
   */
  #readLogs(
    tx: IDBTransaction,
    logs: ReadonlyMap<string, readonly number[]>,
    order: DocOrder | null,
    results: unknown[],
  ): void {
    const source = tx.objectStore(this.#logs.store);
    const runs = runsOf(logs.keys(), order);
    for (const run of runs) {
      for (const doc of run) for (const i of logs.get(doc) ?? []) results[i] = [];
      // Seqs start at 1 and are finite: (doc, 0) and (doc, ∞) bound a whole log, exclusive.
      const range = this.#logs.keyRange.bound(
        [run[0], 0],
        [run[run.length - 1], Number.POSITIVE_INFINITY],
        true,
        true,
      );
      const request = source.getAll(range);
      // Only this run's documents: one between them that the order did not know of is read
      // alone (or not at all), in a request of its own.
      const members = new Set(run);
      request.onsuccess = () => {
        for (const row of request.result as LogRow[]) {
          if (!members.has(row.doc)) continue;
          for (const i of logs.get(row.doc) ?? []) (results[i] as LogRow[]).push(row);
        }
      };
    }
  }
}

/** The `record` reads of a batch in one store and table: the batch's indexes of each name's readers. */
interface RecordReads {
  readonly store: string;
  readonly table: string;
  readonly names: Map<string, number[]>;
}

/** `names` in runs that share a request (see {@link DocOrder.spans}); each alone without an order. */
function runsOf(names: Iterable<string>, order: DocOrder | null): string[][] {
  return order ? order.spans(names) : Array.from(names, (name) => [name]);
}

/** Adds reader `i` to the readers of `key`. */
function addReader(readers: Map<string, number[]>, key: string, i: number): void {
  const those = readers.get(key);
  if (those) those.push(i);
  else readers.set(key, [i]);
}

/** A record {@link BatchedReads.record} reads: keyed `[table, key]`. */
export interface RecordRow {
  readonly table: string;
  readonly key: string;
}

/** A row of a document log: keyed `[doc, seq]`, so one document's rows lie together in key order. */
export interface LogRow {
  readonly doc: string;
}

/** Where the document logs lie: {@link BatchedReads.log} reads them. */
export interface LogLayout {
  /** The store of log rows, keyed `[doc, seq]` with seqs from 1. */
  readonly store: string;
  /** The store keyed by document name, one record per document with a log: their order. */
  readonly order: string;
  /** The key range class of the IndexedDB in use. */
  readonly keyRange: typeof IDBKeyRange;
}
