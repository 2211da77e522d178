import { SyncError } from '@scopesync/core';
import pg from 'pg';
import { toSyncError } from './postgres-errors.ts';

/** The OID of PostgreSQL's `int8` (`bigint`). */
const INT8_OID = 20;

/** What every store query runs on: the pool (one statement, autocommit) or one client inside a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: readonly unknown[],
  ): Promise<pg.QueryResult<R>>;
}

/** Options of {@link openPostgresPool}; every field has a default. */
export interface PostgresPoolOptions {
  /** Most connections the pool opens. Default 10. */
  readonly max?: number;
  /** How long to wait for a connection before failing with Unavailable, in ms. Default 10,000. */
  readonly connectionTimeoutMs?: number;
  /**
   * How long a connection may sit unused before the pool closes it, in ms; 0 keeps every
   * connection the load has opened (up to `max`) until the pool ends. Default 0. node-postgres's
   * own default, 10 s, closed the connections a burst had opened while the load went on; each
   * reopened server process then builds its caches on its first queries, and on a busy machine
   * that stalled the writes of every relay for up to a second (bench/results-cluster.md, run K).
   */
  readonly idleTimeoutMs?: number;
  /** Shown in `pg_stat_activity`. Default `scopesync`. */
  readonly applicationName?: string;
  /**
   * Called when an idle pooled connection fails (the server restarted, a proxy cut it): the
   * pool drops it and opens another on demand. Default: logged to stderr with console.error.
   */
  readonly onIdleError?: (error: Error) => void;
}

const DEFAULTS = {
  max: 10,
  connectionTimeoutMs: 10_000,
  idleTimeoutMs: 0,
  applicationName: 'scopesync',
  onIdleError: (error: Error) => {
    console.error('@scopesync/store-postgres: an idle PostgreSQL connection failed', error);
  },
} as const satisfies PostgresPoolOptions;

/**
 * Type parsers for the store's pools: `int8` as a bigint (node-postgres's default is a string),
 * which {@link toSafeInteger} then turns into a number only when it is exact.
 */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID && format !== 'binary') return (value: string) => BigInt(value);
    return pg.types.getTypeParser(oid, format);
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * Opens a pool of connections to the PostgreSQL at `url` (`postgres://user:password@host:port/db`)
 * and checks that it answers, so that a wrong URL or a stopped server fails here, once, with
 * SyncError('Unavailable') naming the server (never its password). `int8` columns come back as
 * bigint. The caller ends the pool (`pool.end()`) after closing the stores it lent it to.
 */
export async function openPostgresPool(url: string, options: PostgresPoolOptions = {}): Promise<pg.Pool> {
  if (typeof url !== 'string' || url === '') {
    throw new SyncError('BadRequest', 'a PostgreSQL URL is required (postgres://user@host:port/database)');
  }
  const opts = { ...DEFAULTS, ...options };
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max,
    connectionTimeoutMillis: opts.connectionTimeoutMs,
    idleTimeoutMillis: opts.idleTimeoutMs,
    // Kept open, an idle connection must not keep the process alive: a tool that forgets to end
    // its pool still exits, as it did when node-postgres closed idle connections after 10 s.
    allowExitOnIdle: true,
    application_name: opts.applicationName,
    types: TYPES,
  });
  pool.on('error', opts.onIdleError);
  // pg-pool listens for a client's 'error' only while it is idle. A checked-out one (inside a
  // transaction, holding a lock) whose server stops or kills it emits 'error' with no listener,
  // and Node ends the whole process on it (a relay died so under a PostgreSQL stop, chaos #16).
  // Its queries reject with the error anyway and their callers release it as broken.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end().catch(() => undefined); // the connection error below is the one to report
    const cause = toSyncError(error, 'connect');
    throw new SyncError(
      cause.kind === 'Internal' ? 'Unavailable' : cause.kind,
      `cannot reach PostgreSQL at ${redactUrl(url)}: ${cause.message.replace(/^connect: /, '')}`,
      { cause: error },
    );
  }
  return pool;
}

/** `url` without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparsable PostgreSQL URL)';
  }
}

/**
 * An `int8` (or any integer column) as a number, checked: a bigint beyond
 * Number.MAX_SAFE_INTEGER would silently lose precision, so it throws SyncError('Internal').
 * Accepts the string node-postgres gives for `int8` on a pool opened without
 * {@link openPostgresPool}'s parsers.
 */
export function toSafeInteger(value: unknown, what: string): number {
  let big: bigint;
  if (typeof value === 'bigint') big = value;
  else if (typeof value === 'number' && Number.isInteger(value)) big = BigInt(value);
  else if (typeof value === 'string' && /^-?\d+$/.test(value)) big = BigInt(value);
  else throw new SyncError('Internal', `${what} is not an integer: ${String(value)}`);
  if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new SyncError('Internal', `${what} ${big} is beyond the integers a number holds exactly`);
  }
  return Number(big);
}

/** Like {@link toSafeInteger}, keeping null. */
export function toSafeIntegerOrNull(value: unknown, what: string): number | null {
  return value === null || value === undefined ? null : toSafeInteger(value, what);
}
