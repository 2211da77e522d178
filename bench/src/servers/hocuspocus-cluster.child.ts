/**
 * Child process: one of several Hocuspocus 3.x instances behind `@hocuspocus/extension-redis`
 * (stock settings: pub/sub per document, Redlock around stores) on one Redis prefix, storing
 * into a shared PostgreSQL table through `@hocuspocus/extension-database` (stock 2 s debounce,
 * 10 s max; the whole `encodeStateAsUpdate` upserted per store, as its docs show).
 */
import { createRequire } from 'node:module';
import pg from 'pg';
import { runChild } from './child-runtime.ts';

// Loaded through require, as in hocuspocus.child.ts: the packages' "source" export condition
// points at TypeScript sources that are not meant to run outside their own repository.
interface HocuspocusServer {
  readonly address: { port: number };
  listen(): Promise<unknown>;
  destroy(): Promise<void>;
}
const require = createRequire(import.meta.url);
const { Server } = require('@hocuspocus/server') as {
  Server: new (configuration: Record<string, unknown>) => HocuspocusServer;
};
/** The part of an ioredis client this file looks at. */
interface RedisConnection {
  readonly status: string;
  once(event: 'ready', listener: () => void): unknown;
}
const { Redis } = require('@hocuspocus/extension-redis') as {
  Redis: new (configuration: {
    host: string;
    port: number;
    prefix: string;
  }) => { readonly pub: RedisConnection; readonly sub: RedisConnection };
};

/** Resolves once the ioredis connection has passed its ready check. */
function ready(connection: RedisConnection): Promise<void> {
  if (connection.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => connection.once('ready', () => resolve()));
}
const { Database } = require('@hocuspocus/extension-database') as {
  Database: new (configuration: {
    fetch(data: { documentName: string }): Promise<Uint8Array | null>;
    store(data: { documentName: string; state: Buffer }): Promise<void>;
  }) => object;
};

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

runChild(async () => {
  const schema = required('BENCH_POSTGRES_SCHEMA');
  const redis = new URL(required('BENCH_REDIS_URL'));
  const pool = new pg.Pool({ connectionString: required('BENCH_POSTGRES_URL'), max: 10 });
  // Created by the bench parent (servers/cluster.ts) before the instances start.
  const table = `"${schema}"."${required('BENCH_POSTGRES_TABLE')}"`;
  const redisExtension = new Redis({
    host: redis.hostname,
    port: Number(redis.port || 6379),
    prefix: required('BENCH_REDIS_PREFIX'),
  });
  // Take no socket before both Redis connections are ready, as a deployment behind a health
  // check would: a document loaded earlier subscribes on a connection still in its ready check,
  // which ioredis answers with "Connection in subscriber mode" and Hocuspocus with
  // permission-denied to the client.
  await Promise.all([ready(redisExtension.pub), ready(redisExtension.sub)]);
  const server = new Server({
    port: 0,
    address: '127.0.0.1',
    quiet: true,
    stopOnSignals: false,
    extensions: [
      redisExtension,
      new Database({
        async fetch({ documentName }) {
          const result = await pool.query<{ data: Buffer }>(`SELECT data FROM ${table} WHERE name = $1`, [
            documentName,
          ]);
          return result.rows[0]?.data ?? null;
        },
        async store({ documentName, state }) {
          await pool.query(
            `INSERT INTO ${table} (name, data) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET data = excluded.data`,
            [documentName, state],
          );
        },
      }),
    ],
  });
  await server.listen();
  return {
    port: server.address.port,
    async close() {
      // destroy() stores every loaded document (awaiting the upserts) before it resolves.
      await server.destroy();
      await pool.end();
    },
  };
});
