import { SyncError } from '@scopesync/core';
import Database from 'better-sqlite3';
import { toSyncError } from './sqlite-errors.ts';

/** How hard SQLite works to make a commit survive a power loss (`PRAGMA synchronous`). */
export type SqliteSynchronous = 'FULL' | 'NORMAL';

/** Upper bound of the WAL file kept on disk after a checkpoint: large compactions must not leave it huge. */
export const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;

/** How a file is opened: durability, lock wait, and the connection's page cache. */
export interface SqliteOpenOptions {
  readonly synchronous: SqliteSynchronous;
  readonly busyTimeoutMs: number;
  /** The connection's page cache in KiB (`PRAGMA cache_size = -N`); undefined: better-sqlite3's default, 16,000 KiB. */
  readonly cacheKiB?: number | undefined;
}

/**
 * Opens (creating if missing) the SQLite file every store of this package keeps when it is
 * given a path: WAL, `synchronous` as asked, foreign keys enforced, a bounded WAL file, and
 * incremental auto-vacuum for files created here, and the page cache asked for. `store` names
 * the caller in errors.
 */
export function openSqliteFile(
  path: string | undefined,
  options: SqliteOpenOptions,
  store: string,
): Database.Database {
  if (typeof path !== 'string' || path === '') {
    throw new SyncError('BadRequest', `${store} needs a path or a database`);
  }
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: options.busyTimeoutMs });
  } catch (error) {
    throw toSyncError(error, `cannot open ${path}`);
  }
  try {
    // Must come before the first table is created; a no-op on an older file without it. Then a
    // store that frees much (a compaction, a deleted blob) can give the pages back, and a file
    // shared by several stores has the same mode whichever of them created it.
    db.pragma('auto_vacuum = INCREMENTAL');
    // WAL: readers never block the writer (the relay reads while the CLI writes, and the other
    // way round) and a commit is one sequential append to the log.
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous}`);
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
    db.pragma('foreign_keys = ON');
    // Pages stay in the cache once read, up to its size, for the connection's life: a relay
    // that reads thousands of users' keys keeps a full cache per file (bench/results-history.md,
    // "the page cache of relay.sqlite"). Interior b-tree pages, touched by every lookup, stay.
    if (options.cacheKiB !== undefined) db.pragma(`cache_size = -${options.cacheKiB}`);
  } catch (error) {
    db.close();
    throw toSyncError(error, `cannot configure ${path}`);
  }
  return db;
}
