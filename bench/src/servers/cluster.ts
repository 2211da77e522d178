import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createClient } from '@redis/client';
import pg from 'pg';
import { type Peer, type PeerName, processPeer, wsBase } from './peer.ts';
import { registerKey, syncUrl } from './scopesync.ts';
import { ServerProcess } from './server-process.ts';

/** The servers that can run as several processes behind one database and one Redis. */
export const CLUSTER_PEERS = ['scopesync', 'hocuspocus'] as const satisfies readonly PeerName[];
export type ClusterPeerName = (typeof CLUSTER_PEERS)[number];

/** The PostgreSQL and Redis every multi-process deployment uses (each run in its own schema and prefix). */
export interface ClusterBackends {
  readonly postgresUrl: string;
  readonly redisUrl: string;
}

/**
 * `BENCH_POSTGRES_URL` / `BENCH_REDIS_URL`, else the ones the repository's tests use
 * (`SCOPESYNC_TEST_POSTGRES_URL`, `SCOPESYNC_REDIS_URL`), else the local defaults.
 */
export function clusterBackends(env: NodeJS.ProcessEnv = process.env): ClusterBackends {
  return {
    postgresUrl:
      env.BENCH_POSTGRES_URL ?? env.SCOPESYNC_TEST_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432/test',
    redisUrl: env.BENCH_REDIS_URL ?? env.SCOPESYNC_REDIS_URL ?? 'redis://127.0.0.1:6379',
  };
}

/** The URL without its password, for notes and errors. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** Null when both backends answer within a few seconds, else why not (one line). */
export async function unreachableBackends(backends: ClusterBackends): Promise<string | null> {
  const client = new pg.Client({ connectionString: backends.postgresUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    return `PostgreSQL at ${redact(backends.postgresUrl)}: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    await client.end().catch(() => undefined);
  }
  const redis = createClient({
    url: backends.redisUrl,
    socket: { connectTimeout: 3000, reconnectStrategy: false },
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    return `Redis at ${redact(backends.redisUrl)}: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    redis.destroy();
  }
  return null;
}

/** Several server processes sharing one PostgreSQL schema and one Redis prefix. */
export interface Cluster {
  readonly name: ClusterPeerName;
  /** One peer per process, in start order. */
  readonly members: readonly Peer[];
  readonly schema: string;
  readonly redisPrefix: string;
  /**
   * The distinct error and warning lines the members logged so far, with how often each came
   * (most frequent first; JSON lines by message and cause), so a workload can say why it failed.
   */
  problems(): Promise<string[]>;
  /** Kills every member, drops the schema and deletes the prefix's Redis keys. Idempotent. */
  close(): Promise<void>;
}

/** One log line reduced to what repeats: a JSON line's message and cause, else the line. */
function problemOf(line: string): string | null {
  try {
    const entry = JSON.parse(line) as { level?: string; message?: string; error?: { message?: string } };
    if (entry.level !== 'error' && entry.level !== 'warn') return null;
    return `${entry.level}: ${entry.message ?? ''}${entry.error?.message ? ` (${entry.error.message})` : ''}`;
  } catch {
    return /error/i.test(line) && !/^\s+at /.test(line) ? line.trim().slice(0, 200) : null;
  }
}

async function problemsIn(files: readonly string[]): Promise<string[]> {
  const counts = new Map<string, number>();
  for (const file of files) {
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const problem = problemOf(line);
      if (problem !== null) counts.set(problem, (counts.get(problem) ?? 0) + 1);
    }
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([problem, n]) => `${n}× ${problem}`);
}

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  readonly size: number;
  readonly backends: ClusterBackends;
  /** Where member `i`'s output goes. */
  logFile(i: number): string;
}

/** The table the Hocuspocus instances share (its database extension stores one row per document). */
const HOCUSPOCUS_TABLE = 'hocuspocus_documents';

/** What a deployment of `name` stores into, as the report names it. */
export const CLUSTER_STORE: Record<ClusterPeerName, string> = {
  scopesync:
    'PostgreSQL (PostgresRelayStore + PostgresDocStore, advisory locks) + Redis pub/sub (RedisTransport, RedisRateLimitBuckets)',
  hocuspocus:
    'PostgreSQL (extension-database upserting the whole state into one table) + Redis (extension-redis pub/sub, Redlock)',
};

async function startMember(
  name: ClusterPeerName,
  env: Readonly<Record<string, string>>,
  logFile: string,
): Promise<Peer> {
  const proc = await ServerProcess.start({
    entry: new URL(`./${name}-cluster.child.ts`, import.meta.url),
    env,
    logFile,
  });
  const base = wsBase(proc);
  const url = `http://127.0.0.1:${proc.port}`;
  const common = { storedBytes: async () => null, ackedWrite: null } as const;
  return name === 'scopesync'
    ? processPeer(proc, {
        ...common,
        name,
        framing: 'y-websocket',
        docUrl: (doc, key) => syncUrl(base, doc, key),
        register: (deviceName) => registerKey(url, deviceName),
      })
    : processPeer(proc, {
        ...common,
        name,
        framing: 'hocuspocus',
        docUrl: () => `${base}/`,
        register: async () => undefined,
      });
}

/**
 * Starts `size` processes of `name` on a fresh PostgreSQL schema (random name) and Redis
 * prefix, all at once (our relays create and migrate the schema themselves, which is meant to
 * be safe when several start together). On failure everything started is torn down.
 */
export async function startCluster(name: ClusterPeerName, options: ClusterOptions): Promise<Cluster> {
  const id = randomBytes(6).toString('hex');
  const schema = `bench_${id}`;
  const redisPrefix = `bench-${id}`;
  const admin = new pg.Client({ connectionString: options.backends.postgresUrl });
  await admin.connect();
  const members: Peer[] = [];
  let closed: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      await Promise.all(members.map((m) => m.close()));
      try {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
      await deleteKeys(options.backends.redisUrl, redisPrefix);
    })();
    return closed;
  };
  try {
    if (name === 'hocuspocus') {
      await admin.query(`CREATE SCHEMA "${schema}"`);
      await admin.query(
        `CREATE TABLE "${schema}"."${HOCUSPOCUS_TABLE}" (name text PRIMARY KEY, data bytea NOT NULL)`,
      );
    }
    const env = {
      BENCH_POSTGRES_URL: options.backends.postgresUrl,
      BENCH_POSTGRES_SCHEMA: schema,
      BENCH_POSTGRES_TABLE: HOCUSPOCUS_TABLE,
      BENCH_REDIS_URL: options.backends.redisUrl,
      BENCH_REDIS_PREFIX: redisPrefix,
    };
    const started = await Promise.allSettled(
      Array.from({ length: options.size }, (_, i) => startMember(name, env, options.logFile(i))),
    );
    for (const s of started) if (s.status === 'fulfilled') members.push(s.value);
    const failure = started.find((s) => s.status === 'rejected');
    if (failure) throw failure.reason;
    const logs = Array.from({ length: options.size }, (_, i) => options.logFile(i));
    return { name, members, schema, redisPrefix, problems: () => problemsIn(logs), close };
  } catch (error) {
    await close().catch((cleanup: unknown) => console.error(`bench: cleaning up ${schema} failed`, cleanup));
    throw error;
  }
}

/** Deletes every Redis key under `prefix` (rate-limit buckets, locks); channels leave nothing behind. */
async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = createClient({ url: redisUrl, socket: { reconnectStrategy: false } });
  redis.on('error', () => undefined);
  await redis.connect();
  try {
    for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
      if (keys.length > 0) await redis.unlink(keys);
    }
  } finally {
    redis.destroy();
  }
}

/**
 * What a multi-process workload needs before it starts: the engines and the selected peers that
 * run as several processes — or, when either is missing, the notes that say why it skipped.
 */
export async function clusterSetup(
  selected: readonly PeerName[],
): Promise<
  | { readonly ok: true; readonly backends: ClusterBackends; readonly peers: ClusterPeerName[] }
  | { readonly ok: false; readonly note: string }
> {
  const backends = clusterBackends();
  const peers = selected.filter((p): p is ClusterPeerName =>
    (CLUSTER_PEERS as readonly string[]).includes(p),
  );
  const unreachable = await unreachableBackends(backends);
  if (unreachable !== null) {
    return { ok: false, note: `skipped: ${unreachable} (set BENCH_POSTGRES_URL / BENCH_REDIS_URL)` };
  }
  if (peers.length === 0) {
    return {
      ok: false,
      note: 'skipped: none of the selected peers runs as several processes (scopesync, hocuspocus)',
    };
  }
  return { ok: true, backends, peers };
}
