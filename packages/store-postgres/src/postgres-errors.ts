import { type ErrorKind, SyncError } from '@scopesync/core';

/**
 * SQLSTATEs that are the caller's: a key that already exists, a reference to a row that does
 * not, a value PostgreSQL cannot hold (a NUL character in text, a number out of range).
 */
const CALLER_KINDS: Readonly<Record<string, ErrorKind>> = {
  '23505': 'Conflict', // unique_violation
  '23503': 'NotFound', // foreign_key_violation
  '22021': 'BadRequest', // character_not_in_repertoire (NUL in text)
  '22P05': 'BadRequest', // untranslatable_character
  '22003': 'BadRequest', // numeric_value_out_of_range
};

/** SQLSTATE classes meaning "try again later": connection, resources, operator intervention, system. */
const UNAVAILABLE_CLASSES = new Set(['08', '53', '57', '58']);

/** Serialization failure and deadlock: the whole transaction may be retried as it was. */
const RETRYABLE_CODES = new Set(['40001', '40P01']);

/** Node socket errors of a server that is down, unreachable or gone. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/** node-postgres's own messages for a connection that ended or never came. */
const CONNECTION_MESSAGES =
  /Connection terminated|connection error|timeout exceeded when trying to connect|Cannot use a pool after calling end|Client was closed/i;

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True for a serialization failure or a deadlock: the transaction that got it can be run again. */
export function isRetryable(error: unknown): boolean {
  const code = codeOf(error);
  return code !== undefined && RETRYABLE_CODES.has(code);
}

/** True for an error that means PostgreSQL cannot be reached or dropped the connection. */
export function isConnectionError(error: unknown): boolean {
  const code = codeOf(error);
  if (code !== undefined && (NETWORK_CODES.has(code) || UNAVAILABLE_CLASSES.has(code.slice(0, 2)))) {
    return true;
  }
  // An AggregateError (one attempt per address of `localhost`) carries the codes in `errors`.
  const inner = (error as { errors?: unknown } | null)?.errors;
  if (Array.isArray(inner) && inner.some(isConnectionError)) return true;
  return error instanceof Error && CONNECTION_MESSAGES.test(error.message);
}

/**
 * The SyncError for an error thrown while doing `context` (a SyncError passes through
 * unchanged): a key clash is Conflict, a missing referenced row NotFound, a value PostgreSQL
 * cannot store BadRequest, a lost or refused connection, a serialization failure or a deadlock
 * Unavailable (try again), anything else Internal. The original error is the cause.
 */
export function toSyncError(error: unknown, context: string): SyncError {
  if (error instanceof SyncError) return error;
  const code = codeOf(error);
  const message = messageOf(error);
  const caller = code === undefined ? undefined : CALLER_KINDS[code];
  if (caller !== undefined) return new SyncError(caller, `${context}: ${message}`, { cause: error });
  const kind = isRetryable(error) || isConnectionError(error) ? 'Unavailable' : 'Internal';
  return new SyncError(kind, `${context}: ${message}`, { cause: error });
}

function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error.message !== '') return error.message;
  // An AggregateError from a refused connection has an empty message of its own.
  const first = (error as { errors?: unknown }).errors;
  if (Array.isArray(first) && first[0] instanceof Error) return first[0].message;
  return codeOf(error) ?? error.name;
}
