import type { AppendItem, DocStore, StoredEntry } from '@scopesync/core';
import { SyncError } from '@scopesync/core';
import type Database from 'better-sqlite3';
import { APPEND_ENTRY_SQL, KEEP_HEAD_SQL, READ_HEAD_SQL, REMOVE_ENTRIES_SQL } from './doc-log-sql.ts';
import { DocWriteThread } from './doc-write-thread.ts';
import { JOURNAL_SIZE_LIMIT } from './open-sqlite-file.ts';
import { type SqliteFileOptions, SqliteHandle } from './sqlite-handle.ts';
import { preallocateWal } from './wal-preallocate.ts';

/** Options of {@link SqliteDocStore}: where the data lives; every other field has a default. */
export interface SqliteDocStoreOptions extends SqliteFileOptions {
  /**
   * Write on a thread of its own (a file the store opens by `path` only; default false): the
   * caller's event loop then never waits for the log append, the fsync or SQLite's checkpoint,
   * at the cost of a thread while writes come (it stops after `writerIdleMs` without one) and a
   * thread wake per commit. For a server (the relay's): its loop goes back to its sockets as soon
   * as an edit is sent out; a client with a few writes gains nothing from it.
   */
  readonly writeOnThread?: boolean;
  /**
   * Append on the caller's loop but checkpoint on a thread (a file the store opens by `path`
   * only; default false; ignored with `writeOnThread`): SQLite's automatic checkpoint, which
   * copies the log into the database file and fsyncs both every thousand pages, no longer
   * stalls the loop. The thread wakes once per thousand pages, not once per commit: for a
   * machine whose cores are oversubscribed, where that wake costs more than the append it moves.
   */
  readonly checkpointOnThread?: boolean;
  /** How long the writer thread outlives the last write (or checkpoint), in ms. Default 30 s. */
  readonly writerIdleMs?: number;
}

const WRITER_IDLE_MS = 30_000;
/** Log pages between two checkpoints: SQLite's own `wal_autocheckpoint` default. */
const CHECKPOINT_PAGES = 1000;
const PAGE_BYTES = 4096;
/**
 * The log a server store lays out when it opens: a header of 32 bytes, then frames of a
 * 24-byte header and a page, for a quarter more pages than a checkpoint waits for (the page
 * count a commit adds is an estimate, and the writes held during a checkpoint add more).
 */
const PREALLOCATED_LOG_BYTES = 32 + Math.ceil(CHECKPOINT_PAGES * 1.25) * (24 + PAGE_BYTES);

/**
 * The tables. `doc_heads` keeps the head of a document whose entries were removed, so its
 * sequence numbers are never reused (see `doc-log-sql.ts` for how a head is read).
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

/** The named parameters of the log's shared statements. */
interface DocParam {
  readonly doc: string;
}
interface EntryParams extends DocParam {
  readonly data: Uint8Array;
}

interface Statements {
  readonly appendEntry: Database.Statement<[EntryParams], number>;
  readonly load: Database.Statement<[string, number, number], { seq: number; data: Buffer }>;
  readonly head: Database.Statement<[DocParam], number>;
  readonly exists: Database.Statement<[string, number], number>;
  readonly deleteThrough: Database.Statement<[string, number]>;
  readonly replace: Database.Statement<[Uint8Array, string, number]>;
  readonly keepHead: Database.Statement<[DocParam]>;
  readonly removeEntries: Database.Statement<[DocParam]>;
  readonly docsFrom: Database.Statement<[string], string>;
}

/**
 * A durable {@link DocStore} in one SQLite file (better-sqlite3, WAL). Every append, batch
 * and compaction is one transaction, committed (and, at `synchronous` FULL, flushed to disk
 * off the event loop) before its promise resolves. Reads run on the store's own connection;
 * with `writeOnThread`, writes run on a second one in a thread of their own (WAL readers see
 * every commit and never block the writer).
 */
export class SqliteDocStore implements DocStore {
  readonly #handle: SqliteHandle;
  /** Where writes run when they run off the loop; null: on this connection. */
  readonly #writer: DocWriteThread | null;
  /** Where checkpoints run when only they run off the loop (`checkpointOnThread`). */
  readonly #checkpointer: DocWriteThread | null;
  /** Log pages written (estimated) since the last checkpoint was asked for. */
  #pagesSinceCheckpoint = 0;
  /**
   * The checkpoint under way: writes wait for it (their callers' promises, not the loop). A
   * checkpoint that runs beside a writer never catches up with the log's end, and SQLite
   * restarts the log only once it has.
   */
  #gate: Promise<void> | null = null;
  readonly #sql: Statements;
  readonly #appendBatch: (items: readonly AppendItem[]) => number[];
  readonly #compact: (doc: string, throughSeq: number, snapshot: Uint8Array) => void;
  readonly #remove: (doc: string) => void;

  /** Opens (creating if needed) the store at `options.path`, or inside `options.database`. */
  constructor(options: SqliteDocStoreOptions) {
    const ownFile =
      options.database === undefined && typeof options.path === 'string' && options.path !== ':memory:';
    const onThread = options.writeOnThread === true && ownFile;
    const checkpointOnThread = !onThread && options.checkpointOnThread === true && ownFile;
    // Commits are flushed to disk off the event loop (on the writer thread, or else by WalSync):
    // a relay keeps serving sockets while its log is fsynced, and a write still resolves only
    // once it is on disk.
    this.#handle = new SqliteHandle(options, 'SqliteDocStore', 'the store is closed', !onThread);
    this.#sql = this.#handle.setUp('cannot create the document tables', (db) => {
      db.exec(SCHEMA);
      return prepare(db);
    });
    const thread =
      onThread || checkpointOnThread
        ? new DocWriteThread({
            path: options.path as string,
            synchronous: options.synchronous ?? 'FULL',
            busyTimeoutMs: options.busyTimeoutMs ?? 5000,
            journalSizeLimit: JOURNAL_SIZE_LIMIT,
            cacheKiB: options.cacheKiB,
            idleMs: options.writerIdleMs ?? WRITER_IDLE_MS,
          })
        : null;
    this.#writer = onThread ? thread : null;
    this.#checkpointer = checkpointOnThread ? thread : null;
    const db = this.#handle.db;
    // A server's log is written over from its first commit on (see preallocateWal): laid out
    // here, before the store takes its first write.
    if (thread !== null) {
      this.#handle.run('lay out the log of', () =>
        preallocateWal(db, options.path as string, PREALLOCATED_LOG_BYTES),
      );
    }
    // The thread checkpoints instead (see #wrote). The pragma is per connection; the file's
    // last connection to close still checkpoints everything on close.
    if (checkpointOnThread) this.#handle.run('configure', () => db.pragma('wal_autocheckpoint = 0'));

    this.#appendBatch = db.transaction((items: readonly AppendItem[]) =>
      items.map(({ doc, data }) => this.#sql.appendEntry.get({ doc, data }) as number),
    );

    this.#compact = db.transaction((doc: string, throughSeq: number, snapshot: Uint8Array) => {
      if (this.#sql.exists.get(doc, throughSeq) === undefined) {
        throw new SyncError('Conflict', `no entry ${throughSeq} to compact through in ${doc}`);
      }
      this.#sql.deleteThrough.run(doc, throughSeq);
      this.#sql.replace.run(snapshot, doc, throughSeq);
    });

    this.#remove = db.transaction((doc: string) => {
      this.#sql.keepHead.run({ doc });
      this.#sql.removeEntries.run({ doc });
    });
  }

  async append(doc: string, data: Uint8Array): Promise<number> {
    const [seq] = await this.appendBatch([{ doc, data }]);
    return seq as number;
  }

  async appendBatch(items: readonly AppendItem[]): Promise<number[]> {
    const writer = this.#writer;
    this.#run('append', () => {
      if (!Array.isArray(items)) throw new SyncError('BadRequest', 'appendBatch takes an array of items');
      for (const item of items) {
        checkDoc(item?.doc);
        checkBytes(item.data, 'data');
      }
    });
    if (items.length === 0) return [];
    if (writer !== null) {
      // Only the two fields: a caller's item may carry more, and all of it would be copied.
      const plain = items.map(({ doc, data }) => ({ doc, data }));
      return writer.run<number[]>({ op: 'append', items: plain }, 'cannot append the document log');
    }
    // Held while the thread checkpoints: a copy, since the caller may reuse its buffers meanwhile.
    const batch = this.#gate === null ? items : items.map(({ doc, data }) => ({ doc, data: data.slice() }));
    while (this.#gate !== null) await this.#gate;
    const seqs = this.#run('append', () => this.#appendBatch(batch));
    let bytes = 0;
    for (const item of batch) bytes += item.data.byteLength;
    // An entry's pages: the table's and its primary key's.
    this.#wrote(2 * batch.length + Math.floor(bytes / PAGE_BYTES));
    await this.#durable('append');
    return seqs;
  }

  async load(doc: string, sinceSeq = 0, limit?: number): Promise<StoredEntry[]> {
    return this.#run('load', () => {
      checkDoc(doc);
      if (typeof sinceSeq !== 'number' || Number.isNaN(sinceSeq)) {
        throw new SyncError('BadRequest', `sinceSeq must be a number, got ${String(sinceSeq)}`);
      }
      if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) {
        throw new SyncError('BadRequest', `limit must be a non-negative integer, got ${String(limit)}`);
      }
      // LIMIT -1 is SQLite's "no limit".
      return this.#sql.load.all(doc, sinceSeq, limit ?? -1).map(({ seq, data }) => ({
        seq,
        // A plain Uint8Array view over the Buffer better-sqlite3 copied out of the row.
        data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      }));
    });
  }

  async head(doc: string): Promise<number> {
    return this.#run('read the head of', () => {
      checkDoc(doc);
      return this.#sql.head.get({ doc }) ?? 0;
    });
  }

  async heads(docs: readonly string[]): Promise<Map<string, number>> {
    return this.#run('read the heads of', () => {
      for (const doc of docs) checkDoc(doc);
      return new Map(docs.map((doc) => [doc, this.#sql.head.get({ doc }) ?? 0]));
    });
  }

  async compact(doc: string, throughSeq: number, snapshot: Uint8Array): Promise<void> {
    this.#run('compact', () => {
      checkDoc(doc);
      checkBytes(snapshot, 'snapshot');
      if (!Number.isSafeInteger(throughSeq)) {
        throw new SyncError('Conflict', `no entry ${String(throughSeq)} to compact through in ${doc}`);
      }
    });
    const held = this.#gate === null ? snapshot : snapshot.slice();
    while (this.#gate !== null) await this.#gate;
    this.#run('compact', () => {
      if (this.#writer !== null) return;
      this.#compact(doc, throughSeq, held);
      this.#handle.releaseFreePages();
      this.#wrote(2 + Math.floor(held.byteLength / PAGE_BYTES));
    });
    if (this.#writer !== null) {
      await this.#writer.run({ op: 'compact', doc, throughSeq, snapshot }, 'cannot compact the document log');
      return;
    }
    await this.#durable('compact');
  }

  async remove(doc: string): Promise<void> {
    this.#run('remove', () => checkDoc(doc));
    while (this.#gate !== null) await this.#gate;
    this.#run('remove', () => {
      if (this.#writer !== null) return;
      this.#remove(doc);
      this.#handle.releaseFreePages();
      // The kept head's row, and the table's and its primary key's pages the deletion changed.
      this.#wrote(3);
    });
    if (this.#writer !== null) {
      await this.#writer.run({ op: 'remove', doc }, 'cannot remove the document log');
      return;
    }
    await this.#durable('remove');
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

  /** Closes the file if the store opened it, after the writes under way. Idempotent; later calls reject with Unavailable. */
  async close(): Promise<void> {
    await (this.#writer ?? this.#checkpointer)?.close();
    await this.#handle.close();
  }

  /**
   * Counts log pages a commit on this connection wrote, and once a thousand have piled up asks
   * the thread for a checkpoint, holding later writes until it is done (one that fails leaves
   * the log to the next).
   */
  #wrote(pages: number): void {
    const thread = this.#checkpointer;
    if (thread === null) return;
    this.#pagesSinceCheckpoint += pages;
    if (this.#pagesSinceCheckpoint < CHECKPOINT_PAGES || this.#gate !== null) return;
    this.#pagesSinceCheckpoint = 0;
    const gate = thread.run({ op: 'checkpoint' }, 'cannot checkpoint the document log').then(
      () => undefined,
      () => undefined,
    );
    this.#gate = gate.finally(() => {
      this.#gate = null;
    });
  }

  #durable(what: string): Promise<void> {
    return this.#handle.durable(`cannot ${what} the document log`);
  }

  #run<T>(what: string, step: () => T): T {
    return this.#handle.run(`cannot ${what} the document log`, step);
  }
}

function prepare(db: Database.Database): Statements {
  return {
    appendEntry: db.prepare<[EntryParams], number>(APPEND_ENTRY_SQL).pluck(),
    load: db.prepare<[string, number, number], { seq: number; data: Buffer }>(
      'SELECT seq, data FROM doc_entries WHERE doc = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    head: db.prepare<[DocParam], number>(READ_HEAD_SQL).pluck(),
    exists: db
      .prepare<[string, number], number>('SELECT 1 FROM doc_entries WHERE doc = ? AND seq = ?')
      .pluck(),
    deleteThrough: db.prepare<[string, number]>('DELETE FROM doc_entries WHERE doc = ? AND seq < ?'),
    replace: db.prepare<[Uint8Array, string, number]>(
      'UPDATE doc_entries SET data = ? WHERE doc = ? AND seq = ?',
    ),
    keepHead: db.prepare<[DocParam]>(KEEP_HEAD_SQL),
    removeEntries: db.prepare<[DocParam]>(REMOVE_ENTRIES_SQL),
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
