import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { openPostgresPool, type PostgresPoolOptions, redactUrl } from './postgres-pool.ts';

// Test-only (excluded from the build): the database the tests run against, and a fresh schema
// per test so that test files and runs never see each other's rows.

/** The PostgreSQL the tests use: `SCOPESYNC_TEST_POSTGRES_URL`, or the local default. */
export const TEST_URL = process.env.SCOPESYNC_TEST_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432/test';

/** Small pools: test files run in parallel against one server (max_connections is often 100). */
export const TEST_POOL: PostgresPoolOptions = { max: 4 };

/** The test database: an admin pool to create and drop schemas with. */
export interface TestDatabase {
  readonly url: string;
  readonly pool: pg.Pool;
  /** A new, unused schema name; dropped by {@link TestDatabase.end} if not before. */
  newSchema(): string;
  /** Drops a schema and everything in it. */
  dropSchema(schema: string): Promise<void>;
  /** Drops every schema this file made and ends the admin pool. */
  end(): Promise<void>;
}

/**
 * Connects to {@link TEST_URL}, or fails with one line saying how to start PostgreSQL: a test
 * file awaits it at the top, so an unreachable server fails the file instead of skipping it.
 */
export async function connectTestDatabase(): Promise<TestDatabase> {
  let pool: pg.Pool;
  try {
    pool = await openPostgresPool(TEST_URL, { max: 2, connectionTimeoutMs: 5000 });
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).replace(
      /^cannot reach PostgreSQL at \S+: /,
      '',
    );
    throw new Error(
      `PostgreSQL is not reachable at ${redactUrl(TEST_URL)} (${reason}). Start it with ` +
        '`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, ' +
        'or point SCOPESYNC_TEST_POSTGRES_URL at another server.',
    );
  }
  const made = new Set<string>();
  const dropSchema = async (schema: string): Promise<void> => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    made.delete(schema);
  };
  return {
    url: TEST_URL,
    pool,
    newSchema: () => {
      const schema = `scopesync_test_${randomBytes(6).toString('hex')}`;
      made.add(schema);
      return schema;
    },
    dropSchema,
    end: async () => {
      try {
        for (const schema of [...made]) await dropSchema(schema);
      } finally {
        await pool.end();
      }
    },
  };
}
