import { SyncError } from '@scopesync/core';
import type Database from 'better-sqlite3';
import { openSqliteFile, type SqliteSynchronous } from './open-sqlite-file.ts';
import { toSyncError } from './sqlite-errors.ts';
import { WalSync } from './wal-sync.ts';

/** Where a SQLite store keeps its tables: a file of its own, or an open database it is lent. */
export interface SqliteFileOptions {
  /** The database file (created if missing), or `':memory:'`. Required unless `database` is given. */
  readonly path?: string;
  /**
   * An open better-sqlite3 handle to keep the store's tables in, so that several stores (a
   * relay's, a client's) can share one file. The store creates its tables in it but neither
   * changes its pragmas nor closes it: its owner configures and closes it.
   */
  readonly database?: Database.Database;
  /**
   * `FULL` (default): a resolved write survives power loss. `NORMAL`: it survives a crash of
   * the process but the newest commits may be lost on power loss. Only applied when the
   * store opens the file itself.
   */
  readonly synchronous?: SqliteSynchronous;
  /** How long a write waits for another connection's lock (e.g. the CLI's) before failing with Unavailable. Default 5000 ms. */
  readonly busyTimeoutMs?: number;
  /**
   * The page cache of the store's connection, in KiB: SQLite keeps every page it read there,
   * up to this size, for as long as the file is open. Smaller saves memory and reads pages
   * from the operating system's file cache more often. Default: better-sqlite3's, 16,000 KiB.
   * Only applied when the store opens the file itself.
   */
  readonly cacheKiB?: number | undefined;
}

const DEFAULTS = {
  synchronous: 'FULL',
  busyTimeoutMs: 5000,
} as const satisfies Partial<SqliteFileOptions>;

/** The smallest page cache a store accepts: a few pages of 4 KiB, the b-tree's interior pages. */
const MIN_CACHE_KIB = 16;

/**
 * A store's hold on its database: a file it opened itself ({@link openSqliteFile}; closed
 * with the store) or a handle lent by its owner (left as it is). Runs the store's steps,
 * turning a closed store and SQLite errors into SyncErrors.
 */
export class SqliteHandle {
  /** The connection the store prepares its statements on. */
  readonly db: Database.Database;
  readonly #owned: boolean;
  readonly #closedMessage: string;
  /** Flushes the log off the event loop, when commits are made durable that way (see `durable`). */
  readonly #walSync: WalSync | null;
  #closed = false;

  /**
   * Opens `options.path`, or takes `options.database`. `store` names the store in errors;
   * `closedMessage` is the Unavailable error's message once it is closed. With
   * `flushOffLoop`, a file opened here at FULL runs SQLite at NORMAL and `durable()` does the
   * flush FULL would have done inside the commit, on the thread pool: the store must await
   * `durable()` after every write before reporting it.
   */
  constructor(options: SqliteFileOptions, store: string, closedMessage: string, flushOffLoop = false) {
    const opts = { ...DEFAULTS, ...options };
    if (opts.synchronous !== 'FULL' && opts.synchronous !== 'NORMAL') {
      throw new SyncError(
        'BadRequest',
        `synchronous must be FULL or NORMAL, got ${String(opts.synchronous)}`,
      );
    }
    const { cacheKiB } = opts;
    if (cacheKiB !== undefined && !(Number.isSafeInteger(cacheKiB) && cacheKiB >= MIN_CACHE_KIB)) {
      throw new SyncError(
        'BadRequest',
        `cacheKiB must be a whole number ≥ ${MIN_CACHE_KIB}, got ${String(cacheKiB)}`,
      );
    }
    this.#owned = opts.database === undefined;
    this.#closedMessage = closedMessage;
    const offLoop = flushOffLoop && this.#owned && opts.synchronous === 'FULL' && opts.path !== ':memory:';
    this.db =
      opts.database ?? openSqliteFile(opts.path, offLoop ? { ...opts, synchronous: 'NORMAL' } : opts, store);
    this.#walSync = offLoop && opts.path !== undefined ? new WalSync(opts.path) : null;
  }

  /**
   * Resolves once every write committed so far survives power loss. A no-op unless the handle
   * flushes off the loop; there, it rejects with Unavailable when the flush failed (the write
   * must not be reported as stored).
   */
  async durable(context: string): Promise<void> {
    if (this.#walSync === null) return;
    try {
      await this.#walSync.sync();
    } catch (error) {
      throw new SyncError('Unavailable', `${context}: the write could not be flushed to disk`, {
        cause: error,
      });
    }
  }

  /**
   * Runs the store's set-up (tables, statements) and resolves with its result. When it fails
   * a file the store opened is closed again, and the error is a SyncError about `context`.
   */
  setUp<T>(context: string, create: (db: Database.Database) => T): T {
    try {
      return create(this.db);
    } catch (error) {
      if (this.#owned) this.db.close();
      throw toSyncError(error, context);
    }
  }

  /** Runs one synchronous database step: Unavailable once closed, SQLite errors as SyncErrors about `context`. */
  run<T>(context: string, step: () => T): T {
    if (this.#closed) throw new SyncError('Unavailable', this.#closedMessage);
    try {
      return step();
    } catch (error) {
      throw toSyncError(error, context);
    }
  }

  /**
   * Gives the pages a large deletion freed back to the file system: without it the file
   * keeps the high-water mark of everything it ever held (a compacted 47 KiB document sat in a
   * 9 MB file). Only for a file the store opened
   * (and so created with incremental auto-vacuum); a lent database is its owner's to tend.
   */
  releaseFreePages(): void {
    if (this.#owned) this.db.pragma('incremental_vacuum');
  }

  /** Closes the file if the store opened it, after pending flushes. Idempotent; later steps fail with Unavailable. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#walSync?.close();
    if (this.#owned && this.db.open) this.db.close();
  }
}
