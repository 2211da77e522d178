import { closeSync, fdatasyncSync, fstatSync, openSync, writeSync } from 'node:fs';
import type Database from 'better-sqlite3';

/** Zeros written per `write` while the log is extended. */
const CHUNK_BYTES = 1024 * 1024;

/**
 * Extends a WAL database's log file with zeros to `bytes`, so that the commits of its first
 * pass overwrite blocks the file already has instead of appending. An appending commit's
 * flush must also journal the file's new size and blocks (ext4: a journal commit per flush),
 * which on this kind of disk costs about twice an overwrite's flush in time and in system CPU
 * (bench/results-history.md, "The log written over, not appended to"). SQLite restarts its log at the
 * start after a complete checkpoint and keeps the file (up to `journal_size_limit`), so only a
 * freshly opened file's first pass appends; this makes that pass overwrite too.
 *
 * Safe by SQLite's own log format: a reader or a crash recovery takes the log's frames in
 * order and stops at the first whose salt or checksum does not match its header, as zeros
 * never do, and SQLite places each frame by its number, not by the file's end. The zeros are
 * written under the write lock (`BEGIN IMMEDIATE`), so no connection appends meanwhile, and
 * only past the file's current end, never over a frame. A hint only: a log that is missing,
 * already long enough or cannot be extended is left as it is.
 */
export function preallocateWal(db: Database.Database, databasePath: string, bytes: number): void {
  try {
    db.exec('BEGIN IMMEDIATE');
  } catch {
    // Another connection holds the write lock beyond the busy timeout: leave the log as it is.
    return;
  }
  try {
    extendWithZeros(`${databasePath}-wal`, bytes);
  } catch {
    // A missing log, a full disk, a read-only file: the log grows as SQLite writes it.
  } finally {
    db.exec('COMMIT');
  }
}

function extendWithZeros(path: string, bytes: number): void {
  const fd = openSync(path, 'r+');
  try {
    let at = fstatSync(fd).size;
    if (at >= bytes) return;
    const zeros = Buffer.alloc(Math.min(CHUNK_BYTES, bytes - at));
    while (at < bytes) at += writeSync(fd, zeros, 0, Math.min(zeros.byteLength, bytes - at), at);
    // Flushed now, so that the first commits' flushes find the blocks and the size on disk.
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
