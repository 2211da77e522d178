import { createHash } from 'node:crypto';
import {
  type ClusterTransport,
  RedisRateLimitBuckets,
  RedisTransport,
  type RelayCluster,
  type RelayLog,
  type RelayStores,
} from '@scopesync/relay';
import {
  openPostgresPool,
  PostgresChallengeStore,
  PostgresDocStore,
  PostgresLocks,
  PostgresRelayStore,
} from '@scopesync/store-postgres';

/** Where several relays keep their state: a PostgreSQL database and, for fan-out, a Redis. */
export interface EngineSettings {
  /** `postgres://…`: PostgreSQL holds everything the relay stores. */
  readonly databaseUrl: string;
  /** The PostgreSQL schema of the tables (created and migrated at start). */
  readonly databaseSchema: string;
  /** `redis://…`: committed updates, awareness and access events between relays; optional (without it, relays catch up from the database every few seconds). */
  readonly redisUrl?: string | undefined;
  /** Prefix of the Redis channel and keys. */
  readonly redisPrefix: string;
  /** Shared rate-limit buckets (when Redis is given and rate limiting is on). */
  readonly rateLimit: { readonly capacity: number; readonly refillPerSecond: number } | false;
  readonly log: RelayLog;
}

/** The opened engines: what `createRelay` takes, and how to let go of it. */
export interface OpenedEngines {
  readonly stores: RelayStores;
  readonly cluster: RelayCluster;
  readonly rateLimit?: RedisRateLimitBuckets | undefined;
  /** Closes everything opened here (after the relay closed). */
  close(): Promise<void>;
}

/**
 * Opens PostgreSQL (creating or migrating the schema, safe when several relays start at once)
 * and Redis. An unreachable engine is one clear SyncError('Unavailable'), and nothing stays
 * open behind it.
 */
export async function openEngines(settings: EngineSettings): Promise<OpenedEngines> {
  const closers: Array<() => Promise<unknown>> = [];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  };
  try {
    const pool = await openPostgresPool(settings.databaseUrl, {
      max: 20,
      applicationName: 'scopesync-relay',
    });
    closers.push(() => pool.end());
    const schema = settings.databaseSchema;
    const relayStore = await PostgresRelayStore.open({ pool, schema });
    closers.push(() => relayStore.close());
    const docStore = await PostgresDocStore.open({ pool, schema });
    closers.push(() => docStore.close());
    const challenges = await PostgresChallengeStore.open({ pool, schema });
    closers.push(() => challenges.close());
    // A held lock keeps its connection: locks get a pool of their own, so that the queries
    // run under them can never wait for a connection that a lock holder keeps.
    const lockPool = await openPostgresPool(settings.databaseUrl, {
      max: 10,
      applicationName: 'scopesync-relay-locks',
    });
    closers.push(() => lockPool.end());
    let transport: ClusterTransport | undefined;
    let rateLimit: RedisRateLimitBuckets | undefined;
    if (settings.redisUrl !== undefined) {
      const redis = await RedisTransport.connect({
        url: settings.redisUrl,
        prefix: settings.redisPrefix,
        log: settings.log,
      });
      transport = redis;
      closers.push(() => redis.close());
      if (settings.rateLimit !== false) {
        const buckets = await RedisRateLimitBuckets.connect({
          url: settings.redisUrl,
          prefix: settings.redisPrefix,
          ...settings.rateLimit,
        });
        rateLimit = buckets;
        closers.push(() => buckets.close());
      }
    }
    return {
      stores: { relayStore, docStore },
      cluster: {
        transport,
        locks: new PostgresLocks(lockPool, schema),
        challenges,
        relayId: clusterRelayId(settings.databaseUrl, schema),
      },
      rateLimit,
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * The relay id registration proofs name, the same for every relay of one deployment (one
 * database and schema) and different between deployments. Built from the database's host,
 * port, name and the schema only: never from credentials in the URL.
 */
export function clusterRelayId(databaseUrl: string, schema: string): string {
  let where = databaseUrl;
  try {
    const url = new URL(databaseUrl);
    where = `${url.hostname}:${url.port}${url.pathname}`;
  } catch {
    // Not a URL (a connection string the driver understands): hash it whole.
  }
  return `pg-${createHash('sha256').update(`${where}\0${schema}`).digest('hex').slice(0, 24)}`;
}
