import { SyncError } from '@scopesync/core';
import pg from 'pg';
import { isConnectionError } from './postgres-errors.ts';

// A statement that must answer within a bound (a commit a writer waits on). A backend stopped
// (SIGSTOP), or a network black hole, leaves a plain query waiting forever: node-postgres has no
// bound by default, and a server-side statement_timeout cannot fire in a backend that does
// not run. Giving up on the client side alone is not enough either: the statement is already in
// the backend's socket buffer, and a backend that resumes runs and commits it even after its
// client hung up — so the writer, refused, sends the edit again and it is stored twice. The
// hung backend is therefore terminated (pg_terminate_backend from another connection) before
// the caller is answered: a stopped backend handles that signal first when it resumes and
// exits before it reads the statement.

/** The most a terminate of a hung backend may take, in ms (it runs on a fresh connection). */
const TERMINATE_BOUND_MS = 5000;

const TIMED_OUT = Symbol('timed out');

/**
 * Runs one statement on a client of `pool` and answers within `timeoutMs` (plus the wait for
 * a connection, which the pool bounds): past it, the statement's backend is terminated and
 * the call rejects with SyncError('Unavailable'). The message says whether the terminate
 * succeeded (the statement cannot commit) or not (it may still commit later).
 */
export async function boundedQuery<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  text: string,
  values: readonly unknown[],
  timeoutMs: number,
): Promise<pg.QueryResult<R>> {
  const client = await pool.connect();
  const pid = (client as unknown as { processID: number | null }).processID;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), timeoutMs);
  });
  const query = client.query<R>(text, values as unknown[]);
  let outcome: pg.QueryResult<R> | typeof TIMED_OUT;
  try {
    outcome = await Promise.race([query, deadline]);
  } catch (error) {
    clearTimeout(timer);
    client.release(isConnectionError(error) ? (error as Error) : undefined);
    throw error;
  }
  clearTimeout(timer);
  if (outcome !== TIMED_OUT) {
    client.release();
    return outcome;
  }
  // The late answer (or the error of the connection we are about to drop) goes nowhere.
  query.catch(() => undefined);
  const terminated = pid === null ? false : await terminateBackend(pool, pid);
  // Never back into the pool: the connection still waits for the abandoned statement.
  client.release(new Error('abandoned after a statement timeout'));
  throw new SyncError(
    'Unavailable',
    `PostgreSQL did not answer within ${timeoutMs} ms; ` +
      (terminated
        ? 'its backend was terminated, so the statement did not commit'
        : 'its backend could not be terminated, so the statement may still commit'),
  );
}

/**
 * `pg_terminate_backend(pid)` on a connection of its own (the pool's may all be stuck), bounded;
 * resolves true when PostgreSQL accepted it, false on any failure.
 */
async function terminateBackend(pool: pg.Pool, pid: number): Promise<boolean> {
  const options = (pool as unknown as { options: pg.ClientConfig }).options;
  const admin = new pg.Client({
    ...options,
    connectionTimeoutMillis: TERMINATE_BOUND_MS,
    query_timeout: TERMINATE_BOUND_MS,
  });
  admin.on('error', () => undefined);
  try {
    await admin.connect();
    const result = await admin.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
    return result.rows[0]?.ok === true;
  } catch {
    return false;
  } finally {
    await admin.end().catch(() => undefined);
  }
}
