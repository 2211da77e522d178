/**
 * Child process: one of several relays sharing a PostgreSQL schema and a Redis prefix,
 * assembled exactly as `scopesync-relay start --database-url … --redis-url …` does it
 * (`openEngines` of the scopesync-relay package): PostgreSQL relay and document stores,
 * advisory locks and registration challenges, Redis pub/sub between relays, and rate-limit
 * buckets in Redis at the default limits.
 */
import { createRelay, DEFAULT_RATE_LIMIT, type RelayLog } from '@scopesync/relay';
import { openEngines } from 'scopesync-relay';
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
  const engines = await openEngines({
    databaseUrl: required('BENCH_POSTGRES_URL'),
    databaseSchema: required('BENCH_POSTGRES_SCHEMA'),
    redisUrl: required('BENCH_REDIS_URL'),
    redisPrefix: required('BENCH_REDIS_PREFIX'),
    rateLimit: { capacity: DEFAULT_RATE_LIMIT.capacity, refillPerSecond: DEFAULT_RATE_LIMIT.refillPerSecond },
    log,
  });
  try {
    const relay = createRelay({
      port: 0,
      host: '127.0.0.1',
      stores: engines.stores,
      cluster: engines.cluster,
      ...(engines.rateLimit === undefined ? {} : { rateLimit: engines.rateLimit }),
      log,
    });
    const { port } = await relay.listen();
    return {
      port,
      async close() {
        await relay.close();
        await engines.close();
      },
    };
  } catch (error) {
    await engines.close();
    throw error;
  }
});
