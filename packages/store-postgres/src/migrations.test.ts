import { isSyncError } from '@scopesync/core';
import type pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, MIGRATIONS_TABLE, type Migration, migrate, SCHEMA_VERSION } from './migrations.ts';
import { PostgresChallengeStore } from './postgres-challenge-store.ts';
import { PostgresDocStore } from './postgres-doc-store.ts';
import { openPostgresPool } from './postgres-pool.ts';
import { PostgresRelayStore } from './postgres-relay-store.ts';
import { connectTestDatabase, TEST_POOL } from './test-postgres.ts';

// Fails the whole file with one line on how to start PostgreSQL when it is not running.
const db = await connectTestDatabase();
afterAll(() => db.end());

describe('migrations', () => {
  const pools: pg.Pool[] = [];
  const closing: Array<{ close(): Promise<void> }> = [];
  let schema = '';
  afterEach(async () => {
    for (const s of closing.splice(0)) await s.close();
    for (const p of pools.splice(0)) await p.end();
    await db.dropSchema(schema);
  });
  const pool = async (): Promise<pg.Pool> => {
    const p = await openPostgresPool(db.url, TEST_POOL);
    pools.push(p);
    return p;
  };
  const applied = async (): Promise<Array<{ version: number; n: bigint }>> =>
    (
      await db.pool.query(
        `SELECT version, count(*) AS n FROM "${schema}".${MIGRATIONS_TABLE} GROUP BY version ORDER BY version`,
      )
    ).rows;

  it('applies each version once when relays start together', async () => {
    schema = db.newSchema();
    const [a, b] = [await pool(), await pool()];
    const versions = await Promise.all([migrate(a, schema), migrate(b, schema), migrate(a, schema)]);
    expect(versions).toEqual([SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]);
    expect(await applied()).toEqual(MIGRATIONS.map((m) => ({ version: m.version, n: 1n })));
    // Every kind of store opening at once on a fresh schema, as a relay and its peers would.
    schema = db.newSchema();
    const opts = { url: db.url, schema, poolOptions: TEST_POOL };
    closing.push(
      ...(await Promise.all([
        PostgresRelayStore.open(opts),
        PostgresDocStore.open(opts),
        PostgresRelayStore.open(opts),
        PostgresChallengeStore.open(opts),
      ])),
    );
    expect(await applied()).toEqual(MIGRATIONS.map((m) => ({ version: m.version, n: 1n })));
  });

  it('applies only the versions a schema lacks, in order', async () => {
    schema = db.newSchema();
    const p = await pool();
    await migrate(p, schema);
    const next: Migration = {
      version: SCHEMA_VERSION + 1,
      name: 'a test column',
      sql: (s) => `ALTER TABLE ${s}.objects ADD COLUMN test_note text`,
    };
    await Promise.all([migrate(p, schema, [...MIGRATIONS, next]), migrate(p, schema, [...MIGRATIONS, next])]);
    expect((await applied()).map((r) => [r.version, r.n])).toEqual([
      ...MIGRATIONS.map((m) => [m.version, 1n]),
      [next.version, 1n],
    ]);
    // A relay that knows fewer versions than the database holds refuses to write to it.
    const error = await PostgresRelayStore.open({ pool: p, schema }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSyncError(error, 'Unavailable'), String(error)).toBe(true);
    expect((error as Error).message).toMatch(`version ${next.version}`);
  });

  it('rolls back a migration that fails, leaving the schema at its version', async () => {
    schema = db.newSchema();
    const p = await pool();
    await migrate(p, schema);
    const broken: Migration = {
      version: SCHEMA_VERSION + 1,
      name: 'broken',
      sql: (s) => `ALTER TABLE ${s}.objects ADD COLUMN half_done text; SELECT no_such_function()`,
    };
    await expect(migrate(p, schema, [...MIGRATIONS, broken])).rejects.toSatisfy((e) => isSyncError(e));
    expect((await applied()).map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
    const { rows } = await db.pool.query(
      `SELECT count(*) AS n FROM information_schema.columns WHERE table_schema = $1 AND column_name = 'half_done'`,
      [schema],
    );
    expect(rows[0].n).toBe(0n);
  });
});
