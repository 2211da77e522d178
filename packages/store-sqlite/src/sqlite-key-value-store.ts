import { deserialize, serialize } from 'node:v8';
import type { KeyValueStore, KvEntry, KvOp } from '@scopesync/core';
import { SyncError } from '@scopesync/core';
import Database from 'better-sqlite3';

/** Options of {@link SqliteKeyValueStore}: a file of its own, or a table in an open database. */
export interface SqliteKeyValueStoreOptions {
  /** The database file (created if missing), or `':memory:'`. Required unless `database` is given. */
  readonly path?: string;
  /**
   * An open better-sqlite3 handle to keep the `kv` table in (next to a SqliteDocStore's tables,
   * say). The store neither changes its pragmas nor closes it.
   */
  readonly database?: Database.Database;
  /** How long a write waits for another connection's lock before failing with Unavailable. Default 5000 ms. */
  readonly busyTimeoutMs?: number;
}

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
  readonly #db: Database.Database;
  readonly #ownsDb: boolean;
  readonly #get: Database.Statement<[string, string], Buffer>;
  readonly #list: Database.Statement<[string, string], { key: string; value: Buffer }>;
  readonly #put: Database.Statement<[string, string, Buffer]>;
  readonly #delete: Database.Statement<[string, string]>;
  readonly #batch: (ops: readonly PreparedOp[]) => void;
  #closed = false;

  /** Opens (creating if needed) the store at `options.path`, or inside `options.database`. */
  constructor(options: SqliteKeyValueStoreOptions) {
    this.#ownsDb = options.database === undefined;
    this.#db = options.database ?? openFile(options.path, options.busyTimeoutMs ?? 5000);
    try {
      this.#db.exec(SCHEMA);
      this.#get = this.#db
        .prepare<[string, string], Buffer>('SELECT value FROM kv WHERE tbl = ? AND key = ?')
        .pluck();
      // Keys sharing a prefix are contiguous from the prefix on: walk from there, stop at the first miss.
      this.#list = this.#db.prepare<[string, string], { key: string; value: Buffer }>(
        'SELECT key, value FROM kv WHERE tbl = ? AND key >= ? ORDER BY key',
      );
      this.#put = this.#db.prepare<[string, string, Buffer]>(
        'INSERT INTO kv (tbl, key, value) VALUES (?, ?, ?) ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value',
      );
      this.#delete = this.#db.prepare<[string, string]>('DELETE FROM kv WHERE tbl = ? AND key = ?');
    } catch (error) {
      if (this.#ownsDb) this.#db.close();
      throw toSyncError(error, 'cannot create the kv table');
    }
    this.#batch = this.#db.transaction((ops: readonly PreparedOp[]) => {
      for (const op of ops) {
        if (op.value === undefined) this.#delete.run(op.table, op.key);
        else this.#put.run(op.table, op.key, op.value);
      }
    });
  }

  async get<T = unknown>(table: string, key: string): Promise<T | undefined> {
    return this.#run('read', () => {
      const raw = this.#get.get(checkName(table, 'table'), checkName(key, 'key'));
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
      for (const row of this.#list.iterate(table, prefix)) {
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
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsDb && this.#db.open) this.#db.close();
  }

  #run<T>(what: string, step: () => T): T {
    if (this.#closed) throw new SyncError('Unavailable', 'the store is closed');
    try {
      return step();
    } catch (error) {
      throw toSyncError(error, `cannot ${what} the key-value store`);
    }
  }
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

function openFile(path: string | undefined, busyTimeoutMs: number): Database.Database {
  if (typeof path !== 'string' || path === '') {
    throw new SyncError('BadRequest', 'SqliteKeyValueStore needs a path or a database');
  }
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: busyTimeoutMs });
  } catch (error) {
    throw toSyncError(error, `cannot open ${path}`);
  }
  try {
    db.pragma('journal_mode = WAL');
    // FULL: a resolved write survives power loss, like the doc store's default.
    db.pragma('synchronous = FULL');
  } catch (error) {
    db.close();
    throw toSyncError(error, `cannot configure ${path}`);
  }
  return db;
}

function toSyncError(error: unknown, context: string): SyncError {
  if (error instanceof SyncError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const busy = code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
  return new SyncError(
    busy ? 'Unavailable' : 'Internal',
    `${context}: ${error instanceof Error ? error.message : String(error)}`,
    {
      cause: error,
    },
  );
}
