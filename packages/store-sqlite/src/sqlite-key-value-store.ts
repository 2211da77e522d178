import { deserialize, serialize } from 'node:v8';
import type { KeyValueStore, KvEntry, KvOp } from '@scopesync/core';
import { SyncError } from '@scopesync/core';
import type Database from 'better-sqlite3';
import { type SqliteFileOptions, SqliteHandle } from './sqlite-handle.ts';

/**
 * Options of {@link SqliteKeyValueStore}: a file of its own, or a table in an open database
 * (next to a SqliteDocStore's tables, say). Its writes are always synchronous FULL.
 */
export type SqliteKeyValueStoreOptions = Omit<SqliteFileOptions, 'synchronous'>;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS kv (
    tbl   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (tbl, key)
  ) WITHOUT ROWID;
`;

/**
 * A durable {@link KeyValueStore} in SQLite (better-sqlite3, WAL, synchronous FULL): the
 * records of a Node client that must survive restarts. Values are kept in V8's
 * structured-clone format, so JSON values and bytes round-trip exactly; a `CryptoKey` cannot
 * be kept (`cloneable` is false), so a Node client keeps its device key as raw bytes.
 */
export class SqliteKeyValueStore implements KeyValueStore {
  readonly cloneable = false;
  readonly #handle: SqliteHandle;
  readonly #sql: Statements;
  readonly #batch: (ops: readonly PreparedOp[]) => void;

  /** Opens (creating if needed) the store at `options.path`, or inside `options.database`. */
  constructor(options: SqliteKeyValueStoreOptions) {
    this.#handle = new SqliteHandle(
      { ...options, synchronous: 'FULL' },
      'SqliteKeyValueStore',
      'the store is closed',
    );
    const sql = this.#handle.setUp('cannot create the kv table', (db) => {
      db.exec(SCHEMA);
      return prepare(db);
    });
    this.#sql = sql;
    this.#batch = this.#handle.db.transaction((ops: readonly PreparedOp[]) => {
      for (const op of ops) {
        if (op.value === undefined) sql.delete.run(op.table, op.key);
        else sql.put.run(op.table, op.key, op.value);
      }
    });
  }

  async get<T = unknown>(table: string, key: string): Promise<T | undefined> {
    return this.#run('read', () => {
      const raw = this.#sql.get.get(checkName(table, 'table'), checkName(key, 'key'));
      return raw === undefined ? undefined : (deserialize(raw) as T);
    });
  }

  async put(table: string, key: string, value: unknown): Promise<void> {
    await this.batch([{ op: 'put', table, key, value }]);
  }

  async delete(table: string, key: string): Promise<void> {
    await this.batch([{ op: 'delete', table, key }]);
  }

  async list<T = unknown>(table: string, prefix = ''): Promise<KvEntry<T>[]> {
    return this.#run('list', () => {
      checkName(table, 'table');
      if (typeof prefix !== 'string') throw new SyncError('BadRequest', 'prefix must be a string');
      const out: KvEntry<T>[] = [];
      for (const row of this.#sql.list.iterate(table, prefix)) {
        if (!row.key.startsWith(prefix)) break;
        out.push({ key: row.key, value: deserialize(row.value) as T });
      }
      // SQLite orders by code point, JavaScript by UTF-16 unit: they differ above the BMP.
      return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    });
  }

  async batch(ops: readonly KvOp[]): Promise<void> {
    this.#run('write', () => {
      if (!Array.isArray(ops)) throw new SyncError('BadRequest', 'batch takes an array of operations');
      // Serialise everything first: a value that cannot be kept fails the batch before any write.
      const prepared = ops.map((op): PreparedOp => {
        const table = checkName(op.table, 'table');
        const key = checkName(op.key, 'key');
        if (op.op === 'delete') return { table, key, value: undefined };
        if (op.op !== 'put')
          throw new SyncError('BadRequest', `unknown operation ${String((op as { op: unknown }).op)}`);
        if (op.value === undefined)
          throw new SyncError('BadRequest', 'a key-value store cannot keep undefined');
        try {
          return { table, key, value: serialize(op.value) };
        } catch (error) {
          throw new SyncError(
            'BadRequest',
            `the value of ${table}/${key} cannot be stored: ${String(error)}`,
            {
              cause: error,
            },
          );
        }
      });
      this.#batch(prepared);
    });
  }

  /** Closes the file if the store opened it. Idempotent; later calls reject with Unavailable. */
  async close(): Promise<void> {
    await this.#handle.close();
  }

  #run<T>(what: string, step: () => T): T {
    return this.#handle.run(`cannot ${what} the key-value store`, step);
  }
}

interface Statements {
  readonly get: Database.Statement<[string, string], Buffer>;
  readonly list: Database.Statement<[string, string], { key: string; value: Buffer }>;
  readonly put: Database.Statement<[string, string, Buffer]>;
  readonly delete: Database.Statement<[string, string]>;
}

function prepare(db: Database.Database): Statements {
  return {
    get: db.prepare<[string, string], Buffer>('SELECT value FROM kv WHERE tbl = ? AND key = ?').pluck(),
    // Keys sharing a prefix are contiguous from the prefix on: walk from there, stop at the first miss.
    list: db.prepare<[string, string], { key: string; value: Buffer }>(
      'SELECT key, value FROM kv WHERE tbl = ? AND key >= ? ORDER BY key',
    ),
    put: db.prepare<[string, string, Buffer]>(
      'INSERT INTO kv (tbl, key, value) VALUES (?, ?, ?) ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value',
    ),
    delete: db.prepare<[string, string]>('DELETE FROM kv WHERE tbl = ? AND key = ?'),
  };
}

interface PreparedOp {
  readonly table: string;
  readonly key: string;
  /** Serialised value; undefined deletes. */
  readonly value: Buffer | undefined;
}

function checkName(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new SyncError('BadRequest', `${what} must be a string`);
  return value;
}
