import { SyncError } from './errors.ts';
import type { KeyValueStore, KvEntry, KvOp } from './key-value-store.ts';

/** Copies a value the way IndexedDB would, so no caller shares a mutable object with the store. */
function copy<T>(value: T): T {
  // core compiles without DOM or Node types; structuredClone exists in both at run time.
  return (globalThis as unknown as { structuredClone<V>(value: V): V }).structuredClone(value);
}

/** A {@link KeyValueStore} in memory: the reference implementation, for tests and ephemeral clients. */
export class MemoryKeyValueStore implements KeyValueStore {
  readonly cloneable = true;
  readonly #tables = new Map<string, Map<string, unknown>>();
  #closed = false;

  async get<T = unknown>(table: string, key: string): Promise<T | undefined> {
    this.#open();
    const value = this.#tables.get(table)?.get(key);
    return value === undefined ? undefined : copy(value as T);
  }

  async put(table: string, key: string, value: unknown): Promise<void> {
    await this.batch([{ op: 'put', table, key, value }]);
  }

  async delete(table: string, key: string): Promise<void> {
    await this.batch([{ op: 'delete', table, key }]);
  }

  async list<T = unknown>(table: string, prefix = ''): Promise<KvEntry<T>[]> {
    this.#open();
    const rows = this.#tables.get(table);
    if (!rows) return [];
    return [...rows.keys()]
      .filter((key) => key.startsWith(prefix))
      .sort()
      .map((key) => ({ key, value: copy(rows.get(key) as T) }));
  }

  async batch(ops: readonly KvOp[]): Promise<void> {
    this.#open();
    // Copy everything first: a value that cannot be cloned fails the batch before any op applies.
    const prepared = ops.map((op) => (op.op === 'put' ? { ...op, value: copy(op.value) } : op));
    if (prepared.some((op) => op.op === 'put' && op.value === undefined)) {
      throw new SyncError('BadRequest', 'a key-value store cannot keep undefined');
    }
    for (const op of prepared) {
      let rows = this.#tables.get(op.table);
      if (op.op === 'put') {
        if (!rows) {
          rows = new Map();
          this.#tables.set(op.table, rows);
        }
        rows.set(op.key, op.value);
      } else {
        rows?.delete(op.key);
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #open(): void {
    if (this.#closed) throw new SyncError('Unavailable', 'the store is closed');
  }
}
