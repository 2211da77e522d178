import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@redis/client';
import pg from 'pg';
import { type CallOptions, call, type HttpAnswer } from './http-client.ts';
import { type CliProcess, runCli, startCli } from './relay-cli.ts';

// Several `scopesync-relay` processes on one PostgreSQL database, fanned out through Redis, the
// way an operator runs them. Each cluster gets its own PostgreSQL schema and Redis prefix, so
// test files never see each other's data. Needs PostgreSQL 15 and Redis 7 on 127.0.0.1.

/** The PostgreSQL the cluster tests use. */
export const CLUSTER_DATABASE_URL =
  process.env.SCOPESYNC_TEST_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432/test';
/** The Redis the cluster tests use. */
export const CLUSTER_REDIS_URL = process.env.SCOPESYNC_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** One relay process of a cluster. */
export interface ClusterRelay {
  readonly index: number;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly wsUrl: string;
  readonly cli: CliProcess;
  api(method: string, path: string, options?: CallOptions): Promise<HttpAnswer>;
  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT, …) and, for SIGKILL, waits for the exit. */
  signal(signal: NodeJS.Signals): Promise<void>;
}

/** A cluster of relays sharing one schema and one Redis prefix. */
export interface RelayCluster {
  /** The PostgreSQL the relays use (CLUSTER_DATABASE_URL unless the cluster was given another). */
  readonly databaseUrl: string;
  readonly schema: string;
  readonly prefix: string;
  readonly relays: ClusterRelay[];
  /** The flags every relay of the cluster starts with. */
  readonly flags: readonly string[];
  /** Starts one more relay of the cluster. */
  start(): Promise<ClusterRelay>;
  /** Runs another `scopesync-relay` command against the cluster's engines. */
  cli(args: readonly string[]): ReturnType<typeof runCli>;
  /** Kills Redis's subscriber connection of every relay whose index is given (their pub/sub stops until they reconnect). */
  killSubscriptions(): Promise<number>;
  /** Stops every relay and drops the schema. */
  close(): Promise<void>;
}

/** Fails with one line saying how to start the engines when either does not answer. */
async function requireEngines(databaseUrl: string): Promise<void> {
  const db = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  try {
    await db.connect();
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${databaseUrl} (${String(error)}): start it with \`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\``,
    );
  } finally {
    await db.end().catch(() => undefined);
  }
  const redis = createClient({ url: CLUSTER_REDIS_URL, socket: { reconnectStrategy: false } });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.close();
  } catch (error) {
    throw new Error(
      `Redis is not reachable at ${CLUSTER_REDIS_URL} (${String(error)}): start it with \`redis-server --daemonize yes --port 6379 --save "" --appendonly no\``,
    );
  }
}

/**
 * Starts `count` relays on a fresh schema and Redis prefix, with `extraFlags` for each, on
 * `databaseUrl` (default: the shared test server).
 */
export async function startCluster(
  count: number,
  extraFlags: readonly string[] = [],
  databaseUrl: string = CLUSTER_DATABASE_URL,
): Promise<RelayCluster> {
  await requireEngines(databaseUrl);
  const id = randomBytes(5).toString('hex');
  const schema = `scopesync_cluster_${id}`;
  const prefix = `cluster-${id}`;
  // One audit key and anchor for the whole cluster, outside the database (docs/security.md).
  const auditDir = mkdtempSync(join(tmpdir(), `scopesync-cluster-audit-${id}-`));
  const engineFlags = [
    '--audit-dir',
    auditDir,
    '--database-url',
    databaseUrl,
    '--database-schema',
    schema,
    '--redis-url',
    CLUSTER_REDIS_URL,
    '--redis-prefix',
    prefix,
  ];
  const flags = ['--port', '0', '--close-grace-ms', '500', ...engineFlags, ...extraFlags];
  const relays: ClusterRelay[] = [];
  const start = async (): Promise<ClusterRelay> => {
    const cli = await startCli(flags, { SCOPESYNC_LOG_LEVEL: 'error' });
    const url = cli.url;
    const relay: ClusterRelay = {
      index: relays.length,
      url,
      wsUrl: url.replace(/^http/, 'ws'),
      cli,
      api: (method, path, options) => call(url, method, path, options),
      signal: async (signal) => {
        cli.child.kill(signal);
        if (signal === 'SIGKILL' || signal === 'SIGTERM') await cli.finished;
      },
    };
    relays.push(relay);
    return relay;
  };
  // One first, so the schema is migrated once before the others start (they would wait anyway).
  await start();
  for (let i = 1; i < count; i++) await start();
  return {
    databaseUrl,
    schema,
    prefix,
    relays,
    flags,
    start,
    cli: (args) => runCli([...args, ...engineFlags]),
    killSubscriptions: async () => {
      const admin = createClient({ url: CLUSTER_REDIS_URL });
      await admin.connect();
      try {
        const list = String(await admin.sendCommand(['CLIENT', 'LIST', 'TYPE', 'pubsub']));
        const ids = list
          .split('\n')
          .filter((line) => line.includes(`name=scopesync-${prefix}-`) && line.includes('-sub '))
          .map((line) => /\bid=(\d+)/.exec(line)?.[1])
          .filter((x): x is string => x !== undefined);
        for (const clientId of ids) await admin.sendCommand(['CLIENT', 'KILL', 'ID', clientId]);
        return ids.length;
      } finally {
        await admin.close();
      }
    },
    close: async () => {
      for (const relay of relays) {
        if (relay.cli.child.exitCode === null && relay.cli.child.signalCode === null) {
          relay.cli.child.kill('SIGCONT');
          relay.cli.child.kill('SIGTERM');
        }
      }
      await Promise.all(relays.map((r) => r.cli.finished.catch(() => undefined)));
      const db = new pg.Client({ connectionString: databaseUrl });
      await db.connect();
      try {
        await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await db.end();
      }
      rmSync(auditDir, { recursive: true, force: true });
    },
  };
}
