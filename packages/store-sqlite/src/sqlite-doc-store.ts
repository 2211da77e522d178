import type { AppendItem, DocStore, StoredEntry } from '@scopesync/core';
import { SyncError } from '@scopesync/core';
import Database from 'better-sqlite3';

/** How hard SQLite works to make a commit survive a power loss (`PRAGMA synchronous`). */
export type SqliteSynchronous = 'FULL' | 'NORMAL';

/** Options of {@link SqliteDocStore}; every field has a default except where the data lives. */
export interface SqliteDocStoreOptions {
  /**
   * The database file (created if missing), or `':memory:'`. Required unless `database` is
   * given.
   */
  readonly path?: string;
  /**
   * An open better-sqlite3 handle to keep the document tables in, so a relay can keep one
   * file for all its tables. The store creates its tables in it but neither changes its
   * pragmas nor closes it: the owner configures and closes it.
   */
  readonly database?: Database.Database;
  /**
   * `FULL` (default): a resolved append survives power loss. `NORMAL`: it survives a crash
   * of the process but the newest commits may be lost on power loss. Only applied when the
   * store opens the file itself.
   */
  readonly synchronous?: SqliteSynchronous;
  /** How long a write waits for another connection's lock before failing with Unavailable. Default 5000 ms. */
  readonly busyTimeoutMs?: number;
}

const DEFAULTS = {
  synchronous: 'FULL',
  busyTimeoutMs: 5000,
} as const satisfies Partial<SqliteDocStoreOptions>;

/** Upper bound of the WAL file kept on disk after a checkpoint: large compactions must not leave it huge. */
const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;

/**
 * The tables. `doc_heads` keeps the highest seq ever assigned per document, so removing a
 * document (or compacting it down to one row) never lets a sequence number be reused.
 * A plain rowid table rather than WITHOUT ROWID: entries are often larger than the 1/20 of a
 * page where WITHOUT ROWID stops paying off.
 */
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS doc_entries (
    doc  TEXT    NOT NULL,
    seq  INTEGER NOT NULL,
    data BLOB    NOT NULL,
    PRIMARY KEY (doc, seq)
  );
  CREATE TABLE IF NOT EXISTS doc_heads (
    doc TEXT    NOT NULL PRIMARY KEY,
    seq INTEGER NOT NULL
  );
`;

interface Statements {
  readonly nextSeq: Database.Statement<[string], number>;
  readonly insert: Database.Statement<[string, number, Uint8Array]>;
  readonly load: Database.Statement<[string, number], { seq: number; data: Buffer }>;
  readonly head: Database.Statement<[string], number>;
  readonly exists: Database.Statement<[string, number], number>;
  readonly deleteThrough: Database.Statement<[string, number]>;
  readonly replace: Database.Statement<[Uint8Array, string, number]>;
  readonly remove: Database.Statement<[string]>;
  readonly docsFrom: Database.Statement<[string], string>;
}

/**
 * A durable {@link DocStore} in one SQLite file (better-sqlite3, WAL). Every append, batch
 * and compaction is one transaction, committed before its promise resolves.
 */
export class SqliteDocStore implements DocStore {
  readonly #db: Database.Database;
  readonly #ownsDb: boolean;
  readonly #sql: Statements;
  readonly #appendBatch: (items: readonly AppendItem[]) => number[];
  readonly #compact: (doc: string, throughSeq: number, snapshot: Uint8Array) => void;
  #closed = false;

  /** Opens (creating if needed) the store at `options.path`, or inside `options.database`. */
  constructor(options: SqliteDocStoreOptions) {
    const opts = { ...DEFAULTS, ...options };
    if (opts.synchronous !== 'FULL' && opts.synchronous !== 'NORMAL') {
      throw new SyncError(
        'BadRequest',
        `synchronous must be FULL or NORMAL, got ${String(opts.synchronous)}`,
      );
    }
    this.#ownsDb = opts.database === undefined;
    this.#db = opts.database ?? openFile(opts.path, opts.synchronous, opts.busyTimeoutMs);
    try {
      this.#db.exec(SCHEMA);
      this.#sql = prepare(this.#db);
    } catch (error) {
      if (this.#ownsDb) this.#db.close();
      throw toSyncError(error, 'cannot create the document tables');
    }

    this.#appendBatch = this.#db.transaction((items: readonly AppendItem[]) =>
      items.map(({ doc, data }) => {
        const seq = this.#sql.nextSeq.get(doc) as number;
        this.#sql.insert.run(doc, seq, data);
        return seq;
      }),
    );

    this.#compact = this.#db.transaction((doc: string, throughSeq: number, snapshot: Uint8Array) => {
      if (this.#sql.exists.get(doc, throughSeq) === undefined) {
        throw new SyncError('Conflict', `no entry ${throughSeq} to compact through in ${doc}`);
      }
      this.#sql.deleteThrough.run(doc, throughSeq);
      this.#sql.replace.run(snapshot, doc, throughSeq);
    });
  }

  async append(doc: string, data: Uint8Array): Promise<number> {
    const [seq] = await this.appendBatch([{ doc, data }]);
    return seq as number;
  }

  async appendBatch(items: readonly AppendItem[]): Promise<number[]> {
    return this.#run('append', () => {
      if (!Array.isArray(items)) throw new SyncError('BadRequest', 'appendBatch takes an array of items');
      for (const item of items) {
        checkDoc(item?.doc);
        checkBytes(item.data, 'data');
      }
      return items.length === 0 ? [] : this.#appendBatch(items);
    });
  }

  async load(doc: string, sinceSeq = 0): Promise<StoredEntry[]> {
    return this.#run('load', () => {
      checkDoc(doc);
      if (typeof sinceSeq !== 'number' || Number.isNaN(sinceSeq)) {
        throw new SyncError('BadRequest', `sinceSeq must be a number, got ${String(sinceSeq)}`);
      }
      return this.#sql.load.all(doc, sinceSeq).map(({ seq, data }) => ({
        seq,
        // A plain Uint8Array view over the Buffer better-sqlite3 copied out of the row.
        data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      }));
    });
  }

  async head(doc: string): Promise<number> {
    return this.#run('read the head of', () => {
      checkDoc(doc);
      return this.#sql.head.get(doc) ?? 0;
    });
  }

  async compact(doc: string, throughSeq: number, snapshot: Uint8Array): Promise<void> {
    return this.#run('compact', () => {
      checkDoc(doc);
      checkBytes(snapshot, 'snapshot');
      if (!Number.isSafeInteger(throughSeq)) {
        throw new SyncError('Conflict', `no entry ${String(throughSeq)} to compact through in ${doc}`);
      }
      this.#compact(doc, throughSeq, snapshot);
      this.#releaseFreePages();
    });
  }

  async remove(doc: string): Promise<void> {
    return this.#run('remove', () => {
      checkDoc(doc);
      this.#sql.remove.run(doc);
      this.#releaseFreePages();
    });
  }

  async docs(prefix = ''): Promise<string[]> {
    return this.#run('list', () => {
      if (typeof prefix !== 'string') throw new SyncError('BadRequest', 'prefix must be a string');
      // Names sharing a prefix are contiguous in SQLite's binary (code point) order and start at
      // the prefix itself, so walk the primary-key index from there and stop at the first miss.
      // No LIKE: its wildcards would need escaping and it is case-insensitive for ASCII.
      const out: string[] = [];
      for (const doc of this.#sql.docsFrom.iterate(prefix)) {
        if (!doc.startsWith(prefix)) break;
        out.push(doc);
      }
      // JavaScript's order (UTF-16 code units) differs from code point order above the BMP.
      return out.sort();
    });
  }

  /** Closes the file if the store opened it. Idempotent; later calls reject with Unavailable. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsDb && this.#db.open) this.#db.close();
  }

  /**
   * Gives the pages a compaction or removal freed back to the file system. Without it the
   * file keeps the high-water mark of every log it ever held (a compacted 47 KiB document
   * sat in a 9 MB file). Only for files this store opened itself: auto_vacuum must be set
   * before the first table exists, which openFile does.
   */
  #releaseFreePages(): void {
    if (this.#ownsDb) this.#db.pragma('incremental_vacuum');
  }

  /** Runs one synchronous database step, turning closed stores and SQLite errors into SyncErrors. */
  #run<T>(what: string, step: () => T): T {
    if (this.#closed) throw new SyncError('Unavailable', 'the store is closed');
    try {
      return step();
    } catch (error) {
      throw toSyncError(error, `cannot ${what} the document log`);
    }
  }
}

function openFile(
  path: string | undefined,
  synchronous: SqliteSynchronous,
  busyTimeoutMs: number,
): Database.Database {
  if (typeof path !== 'string' || path === '') {
    throw new SyncError('BadRequest', 'SqliteDocStore needs a path or a database');
  }
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: busyTimeoutMs });
  } catch (error) {
    throw toSyncError(error, `cannot open ${path}`);
  }
  try {
    // Must come before the first table is created; a no-op on an older file without it.
    db.pragma('auto_vacuum = INCREMENTAL');
    // WAL: readers never block the writer and a commit is one sequential append to the log.
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous}`);
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
  } catch (error) {
    db.close();
    throw toSyncError(error, `cannot configure ${path}`);
  }
  return db;
}

function prepare(db: Database.Database): Statements {
  return {
    // One statement both reads and bumps the head, inside the batch's transaction.
    nextSeq: db
      .prepare<[string], number>(
        'INSERT INTO doc_heads (doc, seq) VALUES (?, 1) ON CONFLICT (doc) DO UPDATE SET seq = seq + 1 RETURNING seq',
      )
      .pluck(),
    insert: db.prepare<[string, number, Uint8Array]>(
      'INSERT INTO doc_entries (doc, seq, data) VALUES (?, ?, ?)',
    ),
    load: db.prepare<[string, number], { seq: number; data: Buffer }>(
      'SELECT seq, data FROM doc_entries WHERE doc = ? AND seq > ? ORDER BY seq',
    ),
    head: db.prepare<[string], number>('SELECT seq FROM doc_heads WHERE doc = ?').pluck(),
    exists: db
      .prepare<[string, number], number>('SELECT 1 FROM doc_entries WHERE doc = ? AND seq = ?')
      .pluck(),
    deleteThrough: db.prepare<[string, number]>('DELETE FROM doc_entries WHERE doc = ? AND seq < ?'),
    replace: db.prepare<[Uint8Array, string, number]>(
      'UPDATE doc_entries SET data = ? WHERE doc = ? AND seq = ?',
    ),
    remove: db.prepare<[string]>('DELETE FROM doc_entries WHERE doc = ?'),
    docsFrom: db
      .prepare<[string], string>('SELECT DISTINCT doc FROM doc_entries WHERE doc >= ? ORDER BY doc')
      .pluck(),
  };
}

function checkDoc(doc: unknown): asserts doc is string {
  if (typeof doc !== 'string')
    throw new SyncError('BadRequest', `a document name must be a string, got ${typeof doc}`);
}

function checkBytes(data: unknown, what: string): asserts data is Uint8Array {
  if (!(data instanceof Uint8Array)) {
    throw new SyncError(
      'BadRequest',
      `${what} must be a Uint8Array, got ${data === null ? 'null' : typeof data}`,
    );
  }
}

/** SQLite result codes that mean "try again later" rather than a bug. */
const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY|NOMEM|INTERRUPT)/;

function toSyncError(error: unknown, context: string): SyncError {
  if (error instanceof SyncError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const closed = error instanceof TypeError && /not open/.test(message);
  const kind =
    closed || (typeof code === 'string' && UNAVAILABLE_CODES.test(code)) ? 'Unavailable' : 'Internal';
  return new SyncError(kind, `${context}: ${message}`, { cause: error });
}
