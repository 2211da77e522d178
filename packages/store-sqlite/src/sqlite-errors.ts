import { SyncError } from '@scopesync/core';

/** SQLite result codes that mean "try again later" rather than a bug. */
const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY|NOMEM|INTERRUPT)/;

/**
 * Constraint failures that are the caller's: a key that already exists, or a reference to a
 * row that does not. Any other (NOT NULL, CHECK, a trigger's abort) is a bug, hence Internal.
 */
const CLASH_KINDS: Readonly<Record<string, 'Conflict' | 'NotFound'>> = {
  SQLITE_CONSTRAINT_PRIMARYKEY: 'Conflict',
  SQLITE_CONSTRAINT_UNIQUE: 'Conflict',
  SQLITE_CONSTRAINT_FOREIGNKEY: 'NotFound',
};

/**
 * The SyncError for an error thrown while doing `context` (a SyncError passes through
 * unchanged): a key clash is Conflict (NotFound for a missing foreign key), a busy, full or
 * closed database is Unavailable, anything else Internal. The original error is the cause.
 */
export function toSyncError(error: unknown, context: string): SyncError {
  if (error instanceof SyncError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const clash = typeof code === 'string' ? CLASH_KINDS[code] : undefined;
  if (clash !== undefined) return new SyncError(clash, `${context}: ${message}`, { cause: error });
  // better-sqlite3 throws a TypeError for a handle that is no longer open.
  const closed = error instanceof TypeError && /not open/.test(message);
  const kind =
    closed || (typeof code === 'string' && UNAVAILABLE_CODES.test(code)) ? 'Unavailable' : 'Internal';
  return new SyncError(kind, `${context}: ${message}`, { cause: error });
}
