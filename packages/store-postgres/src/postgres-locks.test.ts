import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresLocks } from './postgres-locks.ts';
import { openPostgresPool } from './postgres-pool.ts';
import { connectTestDatabase, TEST_POOL, type TestDatabase } from './test-postgres.ts';

describe('PostgresLocks', () => {
  let db: TestDatabase;
  let pools: pg.Pool[] = [];
  beforeAll(async () => {
    db = await connectTestDatabase();
    // Two pools: two relays.
    pools = [await openPostgresPool(db.url, TEST_POOL), await openPostgresPool(db.url, TEST_POOL)];
  });
  afterAll(async () => {
    for (const pool of pools) await pool.end();
    await db.end();
  });

  it('runs the holders of one key one at a time across relays, and others in parallel', async () => {
    const namespace = `test-${Math.random().toString(36).slice(2)}`;
    const [a, b] = pools.map((pool) => new PostgresLocks(pool, namespace)) as [PostgresLocks, PostgresLocks];
    let inside = 0;
    let most = 0;
    let counter = 0;
    const section = async (): Promise<void> => {
      inside += 1;
      most = Math.max(most, inside);
      const read = counter;
      await new Promise((resolve) => setTimeout(resolve, 5));
      counter = read + 1; // a read-modify-write that loses updates unless exclusive
      inside -= 1;
    };
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).run('doc-1', section)));
    expect(counter).toBe(20);
    expect(most).toBe(1);
    // Another key is not held up by a held one. Wait until it is held: taking it takes a
    // connection and a round trip, which the other key may well beat.
    let release!: () => void;
    let entered!: () => void;
    const isHeld = new Promise<void>((resolve) => (entered = resolve));
    const held = a.run(
      'doc-2',
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
          entered();
        }),
    );
    await isHeld;
    await b.run('doc-3', async () => undefined);
    release();
    await held;
  });

  it('releases the lock when the section fails', async () => {
    const locks = new PostgresLocks(pools[0] as pg.Pool, `test-${Math.random().toString(36).slice(2)}`);
    await expect(locks.run('k', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(locks.run('k', async () => 'again')).resolves.toBe('again');
  });
});
