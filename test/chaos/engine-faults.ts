import { readdir, readFile, readlink } from 'node:fs/promises';
import { createClient } from '@redis/client';
import pg from 'pg';
import { call } from '../support/http-client.ts';
import { CLUSTER_REDIS_URL, type ClusterRelay, type RelayCluster } from '../support/relay-cluster.ts';
import type { PrivatePostgres, StopMode } from './private-postgres.ts';

// Faults of the engines a cluster runs on, aimed at this run's relays only: the PostgreSQL and
// Redis servers of the machine are shared with other work, so they are never stopped, and
// only connections that belong to our relay processes are killed. The one fault that stops
// PostgreSQL itself stops the run's private server (private-postgres.ts), never the shared one.

/** The faults the engines scenario injects. */
export const ENGINE_FAULTS = [
  'redis-subscriptions-killed',
  'redis-paused',
  'postgres-connections-killed',
  'postgres-stopped',
] as const;
/** One engine fault. */
export type EngineFault = (typeof ENGINE_FAULTS)[number];

/** What an engine fault hit, and what it saw go wrong (must be nothing). */
export interface FaultOutcome {
  /** Connections or servers hit; 0 when the fault could not be injected (it is then not counted). */
  readonly hit: number;
  readonly violations: string[];
  /** Writes refused while the store was down (the relays said so instead of acking). */
  readonly refused?: number;
}

/** The cluster an engine fault aims at, and its private PostgreSQL (null: the shared one). */
export interface FaultTarget {
  readonly cluster: RelayCluster;
  readonly database: PrivatePostgres | null;
}

/** How long a relay may take to store writes again once PostgreSQL is back. */
const RECOVERY_BOUND_MS = 30_000;

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

/** The local TCP ports of the connections `pids` hold to PostgreSQL's `serverPort`, from /proc. */
async function postgresPortsOf(pids: readonly number[], serverPort: number): Promise<number[]> {
  const hexPort = serverPort.toString(16).toUpperCase().padStart(4, '0');
  const inodeToPort = new Map<string, number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      const remote = cols[2];
      const inode = cols[9];
      if (!local || !remote || !inode) continue;
      if (remote.split(':')[1] !== hexPort) continue;
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
  const serverPort = Number(new URL(cluster.databaseUrl).port || '5432');
  const ports = await postgresPortsOf(pids, serverPort);
  if (ports.length === 0) return 0;
  const db = new pg.Client({ connectionString: cluster.databaseUrl });
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

function alive(relay: ClusterRelay): boolean {
  return relay.cli.child.exitCode === null && relay.cli.child.signalCode === null;
}

/** A write a relay must store durably before it answers 200: registering a device key. */
async function probeWrite(relay: ClusterRelay): Promise<number | 'no answer'> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<'no answer'>((resolve) => {
    timer = setTimeout(() => resolve('no answer'), 10_000);
  });
  const answer = call(relay.url, 'POST', '/keys', { body: { device_name: 'chaos-outage-probe' } }).then(
    (a) => a.status,
    () => 'no answer' as const,
  );
  return Promise.race([answer, bound]).finally(() => clearTimeout(timer));
}

/**
 * Stops the private PostgreSQL (`mode`) for `ms`, then starts it again. While it is down, a
 * write to every live relay must be refused (never 200: nothing can be stored); afterwards
 * every relay that lived through it must still run (no crash) and store writes again within
 * {@link RECOVERY_BOUND_MS} (its pool reconnected).
 */
export async function stopPostgres(target: FaultTarget, mode: StopMode, ms: number): Promise<FaultOutcome> {
  const database = target.database;
  if (database === null) return { hit: 0, violations: [] };
  const violations: string[] = [];
  const before = target.cluster.relays.filter(alive);
  const refused = await database.outage(mode, ms, async () => {
    let count = 0;
    for (const relay of target.cluster.relays.filter(alive)) {
      const status = await probeWrite(relay);
      if (status === 200)
        violations.push(`relay ${relay.index} acked a write while PostgreSQL was stopped (${mode})`);
      else count += 1;
    }
    return count;
  });
  for (const relay of before) {
    // The kill loop ends relays with SIGKILL; any other end is a crash.
    if (!alive(relay) && relay.cli.child.signalCode !== 'SIGKILL') {
      const said = (await relay.cli.finished).stderr.trim().split('\n').slice(-25).join(' | ').slice(-3000);
      violations.push(
        `relay ${relay.index} exited (${relay.cli.child.exitCode ?? relay.cli.child.signalCode}) around a PostgreSQL stop (${mode}): ${said}`,
      );
      continue;
    }
    const until = Date.now() + RECOVERY_BOUND_MS;
    for (;;) {
      if (!alive(relay)) break; // killed by the kill loop meanwhile
      if ((await probeWrite(relay)) === 200) break;
      if (Date.now() > until) {
        violations.push(
          `relay ${relay.index} stored nothing within ${RECOVERY_BOUND_MS} ms after PostgreSQL came back (${mode})`,
        );
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  return { hit: 1, violations, refused };
}

/** Options of {@link injectEngineFault}. */
export interface FaultOptions {
  /** How long Redis pauses. Default 800 ms. */
  readonly pauseMs?: number;
  /** How long PostgreSQL stays stopped. Default 2000 ms. */
  readonly outageMs?: number;
  /** How PostgreSQL stops. Default fast. */
  readonly stopMode?: StopMode;
}

/** Injects `fault` on `target`'s cluster; resolves with what it hit (a pause or a stop is 1). */
export async function injectEngineFault(
  target: FaultTarget,
  fault: EngineFault,
  options: FaultOptions = {},
): Promise<FaultOutcome> {
  const { cluster } = target;
  switch (fault) {
    case 'redis-subscriptions-killed':
      return { hit: await killRedisSubscriptions(cluster), violations: [] };
    case 'redis-paused':
      await pauseRedis(options.pauseMs ?? 800);
      return { hit: 1, violations: [] };
    case 'postgres-connections-killed':
      return { hit: await terminatePostgresConnections(cluster), violations: [] };
    case 'postgres-stopped':
      return stopPostgres(target, options.stopMode ?? 'fast', options.outageMs ?? 2000);
  }
}
