/**
 * Child process: one of several relays sharing a PostgreSQL schema and a Redis prefix —
 * `createRelay({ stores, cluster, rateLimit })` assembled the way the CLI does it with
 * `--database-url` and `--redis-url` (apps/relay/src/engines.ts, which the scopesync-relay
 * package does not export, so the same parts are put together here from the packages' public
 * exports): PostgreSQL relay and document stores, advisory locks and registration challenges,
 * Redis pub/sub between relays, and rate-limit buckets in Redis at the default limits.
 */
import {
  createRelay,
  DEFAULT_RATE_LIMIT,
  RedisRateLimitBuckets,
  RedisTransport,
  type RelayLog,
} from '@scopesync/relay';
import {
  openPostgresPool,
  PostgresChallengeStore,
  PostgresDocStore,
  PostgresLocks,
  PostgresRelayStore,
} from '@scopesync/store-postgres';
import { runChild } from './child-runtime.ts';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

// Warnings and errors as JSON lines on stderr (the child's log file), like the CLI.
const log: RelayLog = (level, message, context) => {
  if (level === 'warn' || level === 'error') {
    const cause = context?.error;
    console.error(
      JSON.stringify({
        level,
        message,
        ...context,
        ...(cause instanceof Error ? { error: { message: cause.message, stack: cause.stack } } : {}),
      }),
    );
  }
};

runChild(async () => {
  const databaseUrl = required('BENCH_POSTGRES_URL');
  const schema = required('BENCH_POSTGRES_SCHEMA');
  const redisUrl = required('BENCH_REDIS_URL');
  const prefix = required('BENCH_REDIS_PREFIX');
  const closers: Array<() => Promise<unknown>> = [];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.reverse()) {
      await close().catch((error: unknown) => console.error('bench child: close failed', error));
    }
  };
  try {
    // The CLI's pool size (engines.ts).
    const pool = await openPostgresPool(databaseUrl, { max: 20, applicationName: 'scopesync-bench' });
    closers.push(() => pool.end());
    const relayStore = await PostgresRelayStore.open({ pool, schema });
    closers.push(() => relayStore.close());
    const docStore = await PostgresDocStore.open({ pool, schema });
    closers.push(() => docStore.close());
    const challenges = await PostgresChallengeStore.open({ pool, schema });
    closers.push(() => challenges.close());
    const transport = await RedisTransport.connect({ url: redisUrl, prefix, log });
    closers.push(() => transport.close());
    const buckets = await RedisRateLimitBuckets.connect({
      url: redisUrl,
      prefix,
      capacity: DEFAULT_RATE_LIMIT.capacity,
      refillPerSecond: DEFAULT_RATE_LIMIT.refillPerSecond,
    });
    closers.push(() => buckets.close());
    const relay = createRelay({
      port: 0,
      host: '127.0.0.1',
      stores: { relayStore, docStore },
      cluster: { transport, locks: new PostgresLocks(pool, schema), challenges },
      rateLimit: buckets,
      log,
    });
    const { port } = await relay.listen();
    return {
      port,
      async close() {
        await relay.close();
        await closeAll();
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
});
