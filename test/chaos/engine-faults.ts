import { readdir, readFile, readlink } from 'node:fs/promises';
import { createClient } from '@redis/client';
import pg from 'pg';
import { CLUSTER_DATABASE_URL, CLUSTER_REDIS_URL, type RelayCluster } from '../support/relay-cluster.ts';

// Faults of the engines a cluster runs on, aimed at this run's relays only: the PostgreSQL and
// Redis servers of the machine are shared with other work, so they are never stopped, and
// only connections that belong to our relay processes are killed.

/** The faults the engines scenario injects. */
export const ENGINE_FAULTS = [
  'redis-subscriptions-killed',
  'redis-paused',
  'postgres-connections-killed',
] as const;
/** One engine fault. */
export type EngineFault = (typeof ENGINE_FAULTS)[number];

/** Kills Redis's pub/sub connections of the cluster's relays (they reconnect and catch up). */
export function killRedisSubscriptions(cluster: RelayCluster): Promise<number> {
  return cluster.killSubscriptions();
}

/** Pauses Redis's writes (publishes included) for `ms`: `CLIENT PAUSE ms WRITE`. Keep `ms` short: Redis is shared. */
export async function pauseRedis(ms: number): Promise<void> {
  const admin = createClient({ url: CLUSTER_REDIS_URL });
  admin.on('error', () => undefined);
  await admin.connect();
  try {
    await admin.sendCommand(['CLIENT', 'PAUSE', String(ms), 'WRITE']);
  } finally {
    await admin.close();
  }
}

/** The local TCP ports of the connections `pids` hold to PostgreSQL (port 5432), from /proc. */
async function postgresPortsOf(pids: readonly number[]): Promise<number[]> {
  const inodeToPort = new Map<string, number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      const remote = cols[2];
      const inode = cols[9];
      if (!local || !remote || !inode) continue;
      if (remote.split(':')[1] !== '1538') continue; // 5432
      inodeToPort.set(inode, Number.parseInt(local.split(':')[1] as string, 16));
    }
  }
  const ports: number[] = [];
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      const port = inode === undefined ? undefined : inodeToPort.get(inode);
      if (port !== undefined) ports.push(port);
    }
  }
  return ports;
}

/**
 * Terminates (`pg_terminate_backend`) every PostgreSQL backend serving one of the cluster's
 * live relay processes, found by their client ports. Resolves with the number terminated.
 */
export async function terminatePostgresConnections(cluster: RelayCluster): Promise<number> {
  const pids = cluster.relays
    .filter((r) => r.cli.child.exitCode === null && r.cli.child.signalCode === null)
    .map((r) => r.cli.child.pid)
    .filter((pid): pid is number => pid !== undefined);
  const ports = await postgresPortsOf(pids);
  if (ports.length === 0) return 0;
  const db = new pg.Client({ connectionString: CLUSTER_DATABASE_URL });
  await db.connect();
  try {
    const result = await db.query(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
        WHERE client_port = ANY($1::int[]) AND client_addr IN ('127.0.0.1', '::1') AND pid <> pg_backend_pid()`,
      [ports],
    );
    return result.rows.filter((row: { ok: boolean }) => row.ok).length;
  } finally {
    await db.end();
  }
}

/** Injects `fault` on `cluster`; resolves with how many connections it hit (1 for a pause). */
export async function injectEngineFault(
  cluster: RelayCluster,
  fault: EngineFault,
  pauseMs = 800,
): Promise<number> {
  switch (fault) {
    case 'redis-subscriptions-killed':
      return killRedisSubscriptions(cluster);
    case 'redis-paused':
      await pauseRedis(pauseMs);
      return 1;
    case 'postgres-connections-killed':
      return terminatePostgresConnections(cluster);
  }
}
