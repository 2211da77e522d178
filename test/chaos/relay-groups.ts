import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SeededRandom } from '@scopesync/testing';
import { type CliProcess, runCli, startCli } from '../support/relay-cli.ts';
import { type RelayCluster, startCluster } from '../support/relay-cluster.ts';
import { ChaosProxy } from './chaos-proxy.ts';
import { type PrivatePostgres, startPrivatePostgres } from './private-postgres.ts';

// The relays a chaos run talks to, as groups behind one proxy each: a cluster of relay
// processes on PostgreSQL + Redis, and one relay process on SQLite. A group can lose a relay
// to `kill -9` at any moment and start a replacement (the cluster: a new process; SQLite: the
// same data dir again), while its clients keep one address: the proxy's.

/** Flags that let hundreds of simulated clients from one address in. */
const LOAD_FLAGS = [
  '--rate-limit',
  'off',
  '--max-sockets-per-caller',
  '100000',
  '--max-caller-frames-per-second',
  '1000000',
  '--max-frames-per-second',
  '1000000',
];

/** A relay process of a group. */
export interface GroupRelay {
  readonly url: string;
  readonly cli: CliProcess;
}

/** Relays behind one proxy, on one backend. */
export interface RelayGroup {
  readonly name: 'cluster' | 'sqlite';
  readonly proxy: ChaosProxy;
  /** The proxy's URL: what clients use. */
  readonly url: string;
  /** The relays now alive. */
  live(): GroupRelay[];
  /**
   * `kill -9` of a random live relay, then (when `replace`, and always for a lone relay) a
   * replacement started; resolves once it listens.
   */
  killOne(replace: boolean): Promise<void>;
  /** Creates an Admin user in the group's store (`scopesync-relay admin create`), as an operator does. */
  createAdmin(deviceName: string): Promise<{ userId: string; key: string }>;
  /** The underlying cluster (engines scenario), when this group is one. */
  readonly cluster: RelayCluster | null;
  /** The cluster's own PostgreSQL server, which the engines scenario may stop; null on the shared one. */
  readonly database: PrivatePostgres | null;
  close(): Promise<void>;
}

function alive(cli: CliProcess): boolean {
  return cli.child.exitCode === null && cli.child.signalCode === null;
}

/** The key and user id `scopesync-relay admin create` printed. */
function adminOf(finished: { code: number | null; stdout: string; stderr: string }): {
  userId: string;
  key: string;
} {
  if (finished.code !== 0) throw new Error(`admin create failed (${finished.code}): ${finished.stderr}`);
  const printed = JSON.parse(finished.stdout.trim().split('\n').at(-1) ?? '{}') as {
    key: string;
    user_id: string;
  };
  return { userId: printed.user_id, key: printed.key };
}

function hostPort(url: string): string {
  return new URL(url).host;
}

/**
 * Starts `count` relays on PostgreSQL + Redis behind a proxy. With `privatePostgres`, on a
 * server of their own (see private-postgres.ts); when that cannot be made, on the shared one,
 * saying why on stderr.
 */
export async function startClusterGroup(
  count: number,
  random: SeededRandom,
  extraFlags: readonly string[] = [],
  privatePostgres = false,
): Promise<RelayGroup> {
  let database: PrivatePostgres | null = null;
  if (privatePostgres) {
    const made = await startPrivatePostgres();
    if (typeof made === 'string') {
      console.warn(`[chaos] no private PostgreSQL (${made}): the postgres-stopped fault is skipped`);
    } else database = made;
  }
  let cluster: RelayCluster;
  try {
    cluster = await startCluster(count, [...LOAD_FLAGS, ...extraFlags], database?.url);
  } catch (error) {
    await database?.destroy();
    throw error;
  }
  // A replacement relay must not start while the server is stopped (it would fail to migrate).
  const startRelay = () => (database ? database.exclusive(() => cluster.start()) : cluster.start());
  const live = (): GroupRelay[] =>
    cluster.relays.filter((r) => alive(r.cli)).map((r) => ({ url: r.url, cli: r.cli }));
  const proxy = new ChaosProxy(() => live().map((r) => hostPort(r.url)), random);
  const url = await proxy.listen();
  return {
    name: 'cluster',
    proxy,
    url,
    live,
    cluster,
    database,
    createAdmin: async (deviceName) =>
      adminOf(await cluster.cli(['admin', 'create', '--device-name', deviceName])),
    killOne: async (replace) => {
      const victims = cluster.relays.filter((r) => alive(r.cli));
      if (victims.length > 0) await random.pick(victims).signal('SIGKILL');
      // Never fewer than two: the clients of the killed one must have somewhere to go.
      if (replace || victims.length <= 2) await startRelay();
    },
    close: async () => {
      await proxy.close();
      try {
        await database?.exclusive(() => cluster.close());
        if (!database) await cluster.close();
      } finally {
        await database?.destroy();
      }
    },
  };
}

/** Starts one relay on SQLite behind a proxy; a kill restarts it on the same data dir. */
export async function startSqliteGroup(
  random: SeededRandom,
  extraFlags: readonly string[] = [],
): Promise<RelayGroup> {
  const dataDir = mkdtempSync(join(tmpdir(), 'scopesync-chaos-sqlite-'));
  const flags = [
    '--port',
    '0',
    '--data-dir',
    dataDir,
    '--no-static',
    '--close-grace-ms',
    '500',
    ...LOAD_FLAGS,
    ...extraFlags,
  ];
  const start = async (): Promise<GroupRelay> => {
    // CHAOS_RELAY_LOG_LEVEL=warn (or info) prints the relay's log tail when it exits: for digging into a finding.
    const level = process.env.CHAOS_RELAY_LOG_LEVEL;
    const cli = await startCli(flags, { SCOPESYNC_LOG_LEVEL: level ?? 'error' });
    if (level) void cli.finished.then((f) => console.error(f.stderr.slice(-6000)));
    return { url: cli.url, cli };
  };
  let current = await start();
  const proxy = new ChaosProxy(() => (alive(current.cli) ? [hostPort(current.url)] : []), random);
  const url = await proxy.listen();
  return {
    name: 'sqlite',
    proxy,
    url,
    live: () => (alive(current.cli) ? [current] : []),
    cluster: null,
    database: null,
    createAdmin: async (deviceName) =>
      adminOf(await runCli(['admin', 'create', '--device-name', deviceName, '--data-dir', dataDir])),
    killOne: async () => {
      current.cli.child.kill('SIGKILL');
      await current.cli.finished;
      current = await start();
    },
    close: async () => {
      await proxy.close();
      if (alive(current.cli)) {
        current.cli.child.kill('SIGTERM');
        await current.cli.finished;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
