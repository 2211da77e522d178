import { SyncError } from '@scopesync/core';
import type pg from 'pg';
import { DEFAULT_SCHEMA, migrate, quoteSchema } from './migrations.ts';
import { isConnectionError, isRetryable, toSyncError } from './postgres-errors.ts';
import { openPostgresPool, type PostgresPoolOptions, type Queryable } from './postgres-pool.ts';

/** Where a PostgreSQL store keeps its tables: a pool of its own (from `url`), or one it is lent. */
export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database`: the store opens a pool and ends it on close. Required unless `pool` is given. */
  readonly url?: string;
  /**
   * A pool to run on instead, e.g. one shared by a relay's stores. Open it with
   * {@link openPostgresPool} so `int8` parses as bigint (a string also works). The store leaves
   * it open when it closes: its owner ends it.
   */
  readonly pool?: pg.Pool;
  /** The PostgreSQL schema holding the tables (created and migrated on open). Default `scopesync`. */
  readonly schema?: string;
  /** For the pool the store opens from `url`. */
  readonly poolOptions?: PostgresPoolOptions;
  /** Attempts of a transaction that hits a serialization failure or a deadlock before it fails with Unavailable. Default 20. */
  readonly maxAttempts?: number;
}

/** Isolation of a transaction the handle runs. */
export type Isolation = 'READ COMMITTED' | 'SERIALIZABLE';

const DEFAULT_MAX_ATTEMPTS = 20;

/**
 * A store's hold on PostgreSQL: its pool (owned or lent), its schema, and the one way its
 * steps run (closed check, retry of serialization failures and deadlocks, errors as SyncErrors).
 */
export class PostgresHandle {
  /** The pool every statement runs on. */
  readonly pool: pg.Pool;
  /** The schema name, double-quoted: qualify every table with it. */
  readonly schema: string;
  readonly #owned: boolean;
  readonly #closedMessage: string;
  readonly #maxAttempts: number;
  #closing: Promise<void> | undefined;

  private constructor(
    pool: pg.Pool,
    owned: boolean,
    schema: string,
    closedMessage: string,
    maxAttempts: number,
  ) {
    this.pool = pool;
    this.#owned = owned;
    this.schema = schema;
    this.#closedMessage = closedMessage;
    this.#maxAttempts = maxAttempts;
  }

  /**
   * Opens the pool (or takes `options.pool`), then creates and migrates the schema. A pool it
   * opened is ended again when that fails. `closedMessage` is the Unavailable message after close.
   */
  static async open(options: PostgresStoreOptions, closedMessage: string): Promise<PostgresHandle> {
    const schemaName = options.schema ?? DEFAULT_SCHEMA;
    const schema = quoteSchema(schemaName);
    const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) {
      throw new SyncError('BadRequest', `maxAttempts must be a positive integer, got ${String(maxAttempts)}`);
    }
    if (options.pool === undefined && options.url === undefined) {
      throw new SyncError('BadRequest', 'a PostgreSQL store needs a url or a pool');
    }
    const owned = options.pool === undefined;
    const pool = options.pool ?? (await openPostgresPool(options.url as string, options.poolOptions));
    try {
      await migrate(pool, schemaName);
    } catch (error) {
      if (owned) await pool.end().catch(() => undefined); // the migration error is the one to report
      throw error;
    }
    return new PostgresHandle(pool, owned, schema, closedMessage, maxAttempts);
  }

  /** True once close began: every later step rejects with Unavailable. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Throws SyncError('Unavailable') once the store is closed. */
  checkOpen(): void {
    if (this.#closing !== undefined) throw this.closedError();
  }

  /**
   * Runs `step` on the pool: statements autocommit one by one, so it should be one statement
   * (or reads that need no common snapshot). Retried on a serialization failure or deadlock.
   */
  async run<T>(context: string, step: (q: Queryable) => Promise<T>): Promise<T> {
    return this.#attempt(context, () => step(this.pool));
  }

  /**
   * Runs `step` in one transaction on one pooled client and commits: everything or nothing.
   * READ COMMITTED by default (the steps take the row locks they need); the whole transaction is
   * run again on a serialization failure or deadlock, so `step` must have no other effect.
   */
  async transaction<T>(
    context: string,
    step: (client: pg.PoolClient) => Promise<T>,
    isolation: Isolation = 'READ COMMITTED',
  ): Promise<T> {
    return this.#attempt(context, () => this.once(step, isolation));
  }

  /** Ends the pool if the store opened it. Idempotent; later steps fail with Unavailable. */
  async close(): Promise<void> {
    this.#closing ??= this.#owned ? this.pool.end() : Promise.resolve();
    await this.#closing;
  }

  /**
   * One attempt of a transaction: BEGIN, `step`, COMMIT, or ROLLBACK and the error exactly as
   * thrown (not retried, not mapped). A client whose connection failed is not reused.
   */
  async once<T>(step: (client: pg.PoolClient) => Promise<T>, isolation: Isolation): Promise<T> {
    this.checkOpen();
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query(isolation === 'READ COMMITTED' ? 'BEGIN' : `BEGIN ISOLATION LEVEL ${isolation}`);
      const result = await step(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true; // the connection is gone; `error` says why
      }
      if (isConnectionError(error)) broken = true;
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async #attempt<T>(context: string, once: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      this.checkOpen();
      try {
        return await once();
      } catch (error) {
        if (this.closed) throw this.closedError(error);
        if (!isRetryable(error) || attempt >= this.#maxAttempts) throw toSyncError(error, context);
        await backoff(attempt);
      }
    }
  }

  /** How many attempts a retried transaction gets. */
  get maxAttempts(): number {
    return this.#maxAttempts;
  }

  /** The Unavailable error of a closed store. */
  closedError(cause?: unknown): SyncError {
    return new SyncError('Unavailable', this.#closedMessage, cause === undefined ? undefined : { cause });
  }
}

/** A short, jittered, growing pause before running a conflicting transaction again. */
export function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(100, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
