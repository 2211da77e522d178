/**
 * A Redis connection as every part of the relay opens one: named (so an operator can tell the
 * connections apart in CLIENT LIST), no offline queue (a command while Redis is away fails at
 * once instead of piling up), reconnecting with capped backoff. The client library is loaded
 * here, on first use: a relay without Redis never pays its ~20 MiB.
 */
export async function newRedisClient(url: string, name: string) {
  const { createClient } = await import('@redis/client');
  return createClient({
    url,
    name,
    disableOfflineQueue: true,
    socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) },
  });
}

/** A connection made by {@link newRedisClient}. */
export type RedisClient = Awaited<ReturnType<typeof newRedisClient>>;
