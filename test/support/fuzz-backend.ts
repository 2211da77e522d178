import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { RelayOptions } from '@scopesync/relay';
import { openPostgresPool, PostgresDocStore, PostgresRelayStore } from '@scopesync/store-postgres';
import Database from 'better-sqlite3';
import type pg from 'pg';
import { CLUSTER_DATABASE_URL } from './relay-cluster.ts';
import { startTestRelay, type TestRelay } from './start-test-relay.ts';

// The relay the fuzz tests attack, on either backend, and a raw read of what it stored: the
// fuzzers compare stored rows before and after, so the same generators and checks serve a
// relay on SQLite files (the `npm test` runs) and one on PostgreSQL (the chaos suite).

/** The two storage backends of the relay. */
export type FuzzBackend = 'sqlite' | 'postgres';

/** Raw rows of the relay's tables (same names and columns on both backends). */
export interface StoredRows {
  /** The rows of `sql` (`?` placeholders), each as an array of cells. */
  rows(sql: string, ...params: string[]): Promise<unknown[][]>;
  /** `"<n> rows <hash>"` of the rows of `sql`: equal digests mean byte-identical rows. */
  digest(sql: string, ...params: string[]): Promise<string>;
}

/** A fuzzed relay and its stored rows. */
export interface FuzzRelay {
  readonly backend: FuzzBackend;
  readonly relay: TestRelay;
  readonly stored: StoredRows;
  close(): Promise<void>;
}

/** Hashes rows cell by cell (bytes as bytes, the rest as text). */
function digestOf(rows: unknown[][]): string {
  const hash = createHash('sha256');
  for (const row of rows) {
    for (const cell of row) {
      hash.update(cell instanceof Uint8Array ? cell : String(cell));
      hash.update('\u0000');
    }
    hash.update('\n');
  }
  return `${rows.length} rows ${hash.digest('hex').slice(0, 16)}`;
}

/** Starts a relay on `backend` with `options` (quiet unless the options say otherwise). */
export async function startFuzzRelay(backend: FuzzBackend, options: RelayOptions = {}): Promise<FuzzRelay> {
  if (backend === 'sqlite') {
    const relay = await startTestRelay(options);
    const relayDb = new Database(join(relay.dataDir, 'relay.sqlite'), { readonly: true });
    const docsDb = new Database(join(relay.dataDir, 'docs.sqlite'), { readonly: true });
    const rows = async (sql: string, ...params: string[]) =>
      (/\bdoc_(entries|heads)\b/.test(sql) ? docsDb : relayDb)
        .prepare(sql)
        .raw()
        .all(...params) as unknown[][];
    return {
      backend,
      relay,
      stored: { rows, digest: async (sql, ...params) => digestOf(await rows(sql, ...params)) },
      close: async () => {
        relayDb.close();
        docsDb.close();
        await relay.close();
      },
    };
  }
  const schema = `scopesync_fuzz_${randomBytes(5).toString('hex')}`;
  const pool = await openPostgresPool(CLUSTER_DATABASE_URL, { max: 6, applicationName: 'scopesync-fuzz' });
  const reader = await openPostgresPool(CLUSTER_DATABASE_URL, { max: 1, applicationName: 'scopesync-fuzz' });
  const relayStore = await PostgresRelayStore.open({ pool, schema });
  const docStore = await PostgresDocStore.open({ pool, schema });
  const relay = await startTestRelay({ ...options, stores: { relayStore, docStore } });
  const rows = async (sql: string, ...params: string[]): Promise<unknown[][]> => {
    let n = 0;
    const text = sql
      .replace(/\?/g, () => `$${++n}`)
      .replace(/\bFROM (\w+)/g, (_, table: string) => `FROM "${schema}".${table}`);
    const result = await (reader as pg.Pool).query({ text, values: params, rowMode: 'array' });
    return result.rows as unknown[][];
  };
  return {
    backend,
    relay,
    stored: { rows, digest: async (sql, ...params) => digestOf(await rows(sql, ...params)) },
    close: async () => {
      await relay.close();
      await reader.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
      await reader.end();
      await pool.end().catch(() => undefined);
      await rm(relay.dataDir, { recursive: true, force: true });
    },
  };
}
