import { type KeyValueStore, type KvEntry, type KvOp, SyncError } from '@scopesync/core';
import { type IndexedDbOptions, type KvRow, ScopesyncDatabase } from './indexed-db-database.ts';

/**
 * A {@link KeyValueStore} in IndexedDB, written through Dexie, read in shared read transactions
 * ({@link ScopesyncDatabase.reads}). Values are structured-cloned, so it keeps
 * non-extractable WebCrypto keys as well as JSON values and bytes (`cloneable` is true).
 */
export class IndexedDbKeyValueStore implements KeyValueStore {
  readonly cloneable = true;
  readonly #db: ScopesyncDatabase;
  #closed = false;

  /** Opens the store on its own database, or on a shared {@link ScopesyncDatabase}. */
  constructor(options: IndexedDbOptions | ScopesyncDatabase = {}) {
    this.#db = (options instanceof ScopesyncDatabase ? options : new ScopesyncDatabase(options)).acquire();
  }

  async get<T = unknown>(table: string, key: string): Promise<T | undefined> {
    this.#open();
    // A record: a table keyed by document name (the documents' metadata) is read in runs.
    const row = await this.#db.reads.record<KvRow>('kv', table, key);
    return row?.value as T | undefined;
  }

  async put(table: string, key: string, value: unknown): Promise<void> {
    await this.batch([{ op: 'put', table, key, value }]);
  }

  async delete(table: string, key: string): Promise<void> {
    await this.batch([{ op: 'delete', table, key }]);
  }

  async list<T = unknown>(table: string, prefix = ''): Promise<KvEntry<T>[]> {
    this.#open();
    // Exactly the keys that start with `prefix`: from it up to (not including) the first string
    // after all of them; an array sorts after every string, so [table, []] ends the table.
    const end = prefixEnd(prefix);
    const range = this.#db.keyRange.bound([table, prefix], [table, end ?? []], false, true);
    const rows = await this.#db.reads.getAll<KvRow>('kv', range);
    return rows.map((row) => ({ key: row.key, value: row.value as T }));
  }

  async batch(ops: readonly KvOp[]): Promise<void> {
    this.#open();
    for (const op of ops) {
      if (op.op === 'put' && op.value === undefined)
        throw new SyncError('BadRequest', 'a key-value store cannot keep undefined');
    }
    const db = this.#db;
    await db.dexie.transaction('rw', db.kv, async () => {
      for (const op of ops) {
        if (op.op === 'put') await db.kv.put({ table: op.table, key: op.key, value: op.value });
        else await db.kv.delete([op.table, op.key]);
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.release();
  }

  #open(): void {
    if (this.#closed) throw new SyncError('Unavailable', 'the store is closed');
  }
}

/**
 * The least string above every string that starts with `prefix` (its last code unit below
 * U+FFFF raised by one, trailing U+FFFF dropped first); undefined when there is none.
 */
function prefixEnd(prefix: string): string | undefined {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 0xffff) end--;
  if (end === 0) return undefined;
  return prefix.slice(0, end - 1) + String.fromCharCode(prefix.charCodeAt(end - 1) + 1);
}
