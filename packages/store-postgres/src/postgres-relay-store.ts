import { AsyncLocalStorage } from 'node:async_hooks';
import type { RelayStore } from '@scopesync/core';
import { PostgresAuditQueries } from './postgres-audit-queries.ts';
import { isRetryable, toSyncError } from './postgres-errors.ts';
import {
  type CallbackScope,
  PoolExecutor,
  RetryTransaction,
  refuseReentry,
  TxExecutor,
} from './postgres-executors.ts';
import { backoff, PostgresHandle, type PostgresStoreOptions } from './postgres-handle.ts';
import { statements } from './postgres-relay-sql.ts';

/** Options of {@link PostgresRelayStore}: where the data lives; every other field has a default. */
export type PostgresRelayStoreOptions = PostgresStoreOptions;

/**
 * What {@link PostgresRelayStore.transaction} hands its callback: every method of the store
 * but `close` and `transaction`, all running in the one transaction.
 */
export type PostgresRelayStoreTx = Omit<RelayStore, 'close' | 'transaction'>;

// ---------------------------------------------------------------------------------------------
// The methods

/**
 * Every RelayStore method but close and transaction, over an executor (the pool, or one
 * transaction): the query layers of every area (postgres-*-queries.ts), stacked.
 */
class PostgresRelayMethods extends PostgresAuditQueries implements PostgresRelayStoreTx {}

// ---------------------------------------------------------------------------------------------
// The store

/**
 * The relay's records (users, API key hashes, object metadata and raw blob bytes, shares, key
 * grants, wrapped keys, the audit chain, mod grants) in PostgreSQL, shared by any number of
 * relays. Every change is committed before its promise resolves; multi-row changes are one
 * transaction; concurrent writers, on one relay or several, are ordered by row locks.
 */
export class PostgresRelayStore extends PostgresRelayMethods implements RelayStore {
  readonly #handle: PostgresHandle;
  /**
   * Marks the calls made from inside this store's own transaction callbacks. One per store, so
   * that only those are told apart: other stores (other relays) on the same pool or database,
   * and every other caller of this one, run beside an open transaction as usual.
   */
  readonly #scope: AsyncLocalStorage<CallbackScope>;

  private constructor(handle: PostgresHandle) {
    const sql = statements(handle.schema);
    const scope = new AsyncLocalStorage<CallbackScope>();
    super(new PoolExecutor(handle, scope), sql);
    this.#handle = handle;
    this.#scope = scope;
  }

  /**
   * Connects (or takes `options.pool`), creates and migrates the schema, and resolves with the
   * store. Unavailable when PostgreSQL cannot be reached; BadRequest for bad options.
   */
  static async open(options: PostgresRelayStoreOptions): Promise<PostgresRelayStore> {
    return new PostgresRelayStore(await PostgresHandle.open(options, 'the relay store is closed'));
  }

  /**
   * Runs `fn` in one SERIALIZABLE transaction: everything done through `tx` commits together
   * when `fn` resolves, or not at all when it rejects (with its error, unchanged); `tx` reads see
   * its own writes; concurrent transactions, on any relay, behave as if run one at a time.
   *
   * `fn` may run more than once: on a serialization failure or deadlock the transaction rolls
   * back and the whole of `fn` runs again with a fresh `tx` (up to `maxAttempts`, then
   * Unavailable), so `fn` must have no effect outside `tx` before it resolves.
   *
   * Calls on `tx` run one at a time; a call that rejects changes nothing and `tx` stays usable.
   * `tx` closes when `fn` settles: later calls through it reject with Internal. A call on this
   * store itself (or a nested `transaction`) made from inside `fn`, which would run outside the
   * transaction and could wait for its locks, rejects with Internal; other callers, and other
   * stores on the same database, are not held up by an open transaction beyond PostgreSQL's
   * own row locks.
   */
  async transaction<T>(fn: (tx: PostgresRelayStoreTx) => Promise<T>): Promise<T> {
    refuseReentry(this.#scope);
    for (let attempt = 1; ; attempt++) {
      this.#handle.checkOpen();
      let failure: { error: unknown } | undefined;
      try {
        return await this.#handle.once(async (client) => {
          const executor = new TxExecutor(client);
          const scope: CallbackScope = { open: true };
          try {
            let result: T;
            try {
              result = await this.#scope.run(scope, () => fn(new PostgresRelayMethods(executor, this.sql)));
            } finally {
              scope.open = false;
            }
            await executor.end();
            if (executor.mustRetry)
              throw new RetryTransaction('a statement of the transaction must be retried');
            return result;
          } catch (error) {
            await executor.end();
            if (executor.mustRetry || isRetryable(error)) {
              throw new RetryTransaction('the transaction must be retried', { cause: error });
            }
            failure = { error }; // the callback's own error: passed on as it is
            throw error;
          }
        }, 'SERIALIZABLE');
      } catch (error) {
        if (failure !== undefined) throw failure.error;
        if (this.#handle.closed) throw this.#handle.closedError(error);
        if (!isRetryable(error) || attempt >= this.#handle.maxAttempts) {
          throw toSyncError(error, 'cannot run the transaction');
        }
        await backoff(attempt);
      }
    }
  }

  /** Ends the pool if the store opened it. Idempotent; later calls reject with Unavailable. */
  async close(): Promise<void> {
    await this.#handle.close();
  }
}
