import { randomBytes } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { openPostgresPool } from './postgres-pool.ts';
import { connectTestDatabase } from './test-postgres.ts';

const db = await connectTestDatabase();
afterAll(() => db.end());

it('a checked-out client whose connection the server ends fails its queries instead of the process', async () => {
  const applicationName = `scopesync-pool-${randomBytes(4).toString('hex')}`;
  const pool = await openPostgresPool(db.url, { max: 1, applicationName, onIdleError: () => undefined });
  try {
    const client = await pool.connect();
    await client.query('BEGIN');
    // The server ends the connection (a stop, a crash, a terminate) while the client is checked
    // out: before the fix its 'error' event had no listener and ended the test process.
    const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
    await db.pool.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    await ended;
    await expect(client.query('SELECT 1')).rejects.toThrow();
    client.release(true);
    // The pool opens a new connection for the next query.
    expect((await pool.query<{ x: number }>('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
  } finally {
    await pool.end();
  }
});

it('keeps the connections a burst opened while they sit unused, and closes them when asked to', async () => {
  const warm = await openPostgresPool(db.url, { max: 4 });
  const closing = await openPostgresPool(db.url, { max: 4, idleTimeoutMs: 200 });
  try {
    // Four queries at once open four connections in each pool.
    const burst = (pool: typeof warm) =>
      Promise.all([1, 2, 3, 4].map(() => pool.query('SELECT pg_sleep(0.05)')));
    await Promise.all([burst(warm), burst(closing)]);
    expect([warm.totalCount, closing.totalCount]).toEqual([4, 4]);
    // Past node-postgres's own idle timeout (10 s), which closed them before.
    await new Promise((resolve) => setTimeout(resolve, 10_500));
    expect(warm.totalCount).toBe(4);
    expect(warm.idleCount).toBe(4);
    expect(closing.totalCount).toBe(0);
  } finally {
    await Promise.all([warm.end(), closing.end()]);
  }
}, 20_000);
