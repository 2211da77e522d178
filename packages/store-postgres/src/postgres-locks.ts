import { KeyedMutex, type Locks } from '@scopesync/core';
import type pg from 'pg';
import { toSyncError } from './postgres-errors.ts';

/**
 * {@link Locks} shared by every relay on one PostgreSQL database, on session advisory locks
 * (`pg_advisory_lock` of a 64-bit hash of the key, within `namespace`). Holders on this relay
 * queue in process first, so waiting for a busy key takes no extra connection. A lock dies with
 * its connection, so a relay that is killed holding one releases it.
 */
export class PostgresLocks implements Locks {
  readonly #pool: pg.Pool;
  readonly #namespace: string;
  readonly #local = new KeyedMutex();

  /** `namespace` keeps the keys of several deployments (or test schemas) on one database apart. */
  constructor(pool: pg.Pool, namespace = 'scopesync') {
    this.#pool = pool;
    this.#namespace = namespace;
  }

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.#local.run(key, async () => {
      const lockKey = `${this.#namespace}:${key}`;
      const client = await this.#pool.connect().catch((error: unknown) => {
        throw toSyncError(error, 'cannot take a lock');
      });
      let broken = false;
      try {
        await client
          .query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockKey])
          .catch((error: unknown) => {
            broken = true;
            throw toSyncError(error, 'cannot take a lock');
          });
        try {
          return await fn();
        } finally {
          await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockKey]).catch(() => {
            // The connection failed: the server released the lock with it. Do not reuse it.
            broken = true;
          });
        }
      } finally {
        client.release(broken);
      }
    });
  }
}
