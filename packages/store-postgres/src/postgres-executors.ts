import type { AsyncLocalStorage } from 'node:async_hooks';
import { SyncError } from '@scopesync/core';
import type pg from 'pg';
import { isConnectionError, isRetryable, toSyncError } from './postgres-errors.ts';
import type { PostgresHandle } from './postgres-handle.ts';
import type { Queryable } from './postgres-pool.ts';

// Where the PostgreSQL relay store's methods run: on the pool, or inside one transaction.

/**
 * How a method's queries run: on the pool (each method its own transaction when it needs one)
 * or on the client of a {@link PostgresRelayStore.transaction}. The methods are written once,
 * against this.
 */
export interface Executor {
  /** One statement, or reads that need no common snapshot. */
  one<T>(context: string, step: (q: Queryable) => Promise<T>): Promise<T>;
  /** Several statements that commit together. */
  atomic<T>(context: string, step: (q: Queryable) => Promise<T>): Promise<T>;
}

/**
 * One run of a transaction's callback, as the store's async context carries it into every call
 * the callback makes. Open until the callback settles: a continuation that outlives it (a timer
 * it set, a promise it did not await) is an ordinary caller again.
 */
export interface CallbackScope {
  open: boolean;
}

/**
 * Outside a transaction: statements autocommit; atomic steps get a READ COMMITTED transaction of
 * their own. Refuses a call made from inside one of this store's transaction callbacks, which
 * would run beside the transaction instead of in it: blocked by the transaction's row locks,
 * it would wait for the transaction that waits for it.
 */
export class PoolExecutor implements Executor {
  readonly #handle: PostgresHandle;
  readonly #scope: AsyncLocalStorage<CallbackScope>;

  constructor(handle: PostgresHandle, scope: AsyncLocalStorage<CallbackScope>) {
    this.#handle = handle;
    this.#scope = scope;
  }

  async one<T>(context: string, step: (q: Queryable) => Promise<T>): Promise<T> {
    refuseReentry(this.#scope);
    return this.#handle.run(`cannot ${context}`, step);
  }

  async atomic<T>(context: string, step: (q: Queryable) => Promise<T>): Promise<T> {
    refuseReentry(this.#scope);
    return this.#handle.transaction(`cannot ${context}`, step);
  }
}

/** Throws SyncError('Internal') when called from inside an open transaction callback of the store `scope` belongs to. */
export function refuseReentry(scope: AsyncLocalStorage<CallbackScope>): void {
  if (scope.getStore()?.open) {
    throw new SyncError(
      'Internal',
      'a transaction callback called the store itself; it must use the tx it was given',
    );
  }
}

/**
 * Inside a transaction: every method runs on its client, one at a time (calls made together
 * queue), each under a savepoint so that a method that rejects changes nothing and leaves the
 * transaction usable, as a failed call outside one would.
 */
export class TxExecutor implements Executor {
  readonly #client: pg.PoolClient;
  #queue: Promise<unknown> = Promise.resolve();
  #ended = false;
  /** A step hit a serialization failure or deadlock: the transaction must be run again, whatever the callback did with the error. */
  mustRetry = false;
  /** The connection failed: do not return it to the pool. */
  broken = false;

  constructor(client: pg.PoolClient) {
    this.#client = client;
  }

  one<T>(context: string, step: (q: Queryable) => Promise<T>): Promise<T> {
    return this.atomic(context, step);
  }

  atomic<T>(context: string, step: (q: Queryable) => Promise<T>): Promise<T> {
    if (this.#ended) {
      return Promise.reject(new SyncError('Internal', 'this transaction has ended; its tx is closed'));
    }
    const run = async (): Promise<T> => {
      const client = this.#client;
      try {
        await client.query('SAVEPOINT scopesync_step');
        const result = await step(client);
        await client.query('RELEASE SAVEPOINT scopesync_step');
        return result;
      } catch (error) {
        if (isRetryable(error)) this.mustRetry = true;
        if (isConnectionError(error)) this.broken = true;
        if (!this.broken) {
          await client
            .query('ROLLBACK TO SAVEPOINT scopesync_step; RELEASE SAVEPOINT scopesync_step')
            .catch((rollbackError: unknown) => {
              this.broken = isConnectionError(rollbackError);
              this.mustRetry ||= isRetryable(rollbackError);
            });
        }
        throw toSyncError(error, `cannot ${context}`);
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** Refuses every later call at once, then waits for the calls already made. */
  async end(): Promise<void> {
    this.#ended = true;
    await this.#queue;
  }
}

/** Thrown to roll back and run a transaction again; carries SQLSTATE 40001 so that it maps to Unavailable when attempts run out. */
export class RetryTransaction extends Error {
  readonly code = '40001';
}
