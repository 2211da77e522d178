import type { BenchConfig } from '../config.ts';
import type { Cell, MetricRow, WorkloadReport } from '../report.ts';
import type { Cluster, ClusterPeerName } from '../servers/cluster.ts';
import type { Peer, PeerName, PeerOptions } from '../servers/peer.ts';

/** Server settings a workload may change from the defaults. */
export type PeerSettings = Pick<PeerOptions, 'docIdleMs' | 'maxFramesPerSecond'>;

/** What a workload gets from the run. */
export interface WorkloadContext {
  readonly config: BenchConfig;
  /** Peers to measure, in order. */
  readonly peers: readonly PeerName[];
  /**
   * Starts `name` on a fresh data directory, or on `dataDir` to restart it on what an
   * earlier instance stored. Returns the peer and its data directory.
   */
  startPeer(
    name: PeerName,
    dataDir?: string,
    options?: PeerSettings,
  ): Promise<{ peer: Peer; dataDir: string }>;
  /**
   * Starts `size` processes of `name` on the run's PostgreSQL and Redis, in a fresh schema and
   * Redis prefix that `close()` removes.
   */
  startCluster(name: ClusterPeerName, size: number): Promise<Cluster>;
  log(message: string): void;
  /** Records a peer's failure in full; the report lists it under the workload's notes. */
  fail(message: string): void;
}

/** One benchmark workload: runs every peer in turn and reports rows of figures. */
export interface Workload {
  readonly id: string;
  readonly title: string;
  run(ctx: WorkloadContext): Promise<WorkloadReport>;
}

/** A peer's outcome in one workload: its measurement, or why there is none. */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: string };

/** Outcomes by peer. */
export type Outcomes<T> = Partial<Record<PeerName, Outcome<T>>>;

/**
 * Runs `measure` for each peer in turn — one server alive at a time, so none competes with
 * another for the two cores — and keeps going when one fails.
 */
export async function forEachPeer<T, N extends PeerName = PeerName>(
  ctx: WorkloadContext,
  label: string,
  measure: (name: N) => Promise<T>,
  peers?: readonly N[],
): Promise<Outcomes<T>> {
  const outcomes: Outcomes<T> = {};
  for (const name of peers ?? (ctx.peers as readonly N[])) {
    const started = performance.now();
    try {
      outcomes[name] = { ok: true, value: await measure(name) };
      ctx.log(`${label}: ${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      outcomes[name] = { ok: false, error: message };
      ctx.log(`${label}: ${name} failed: ${message}`);
      ctx.fail(`${name} failed in ${label}: ${message}`);
    }
  }
  return outcomes;
}

/** Starts a peer, runs `fn`, and always closes the peer. */
export async function withPeer<T>(
  ctx: WorkloadContext,
  name: PeerName,
  fn: (peer: Peer, dataDir: string) => Promise<T>,
  dataDir?: string,
  settings?: PeerSettings,
): Promise<T> {
  const started = await ctx.startPeer(name, dataDir, settings);
  try {
    return await fn(started.peer, started.dataDir);
  } finally {
    await started.peer.close();
  }
}

/** Starts a multi-process deployment, runs `fn` on its members, and always tears it down. */
export async function withCluster<T>(
  ctx: WorkloadContext,
  name: ClusterPeerName,
  size: number,
  fn: (members: readonly Peer[], cluster: Cluster) => Promise<T>,
): Promise<T> {
  const cluster = await ctx.startCluster(name, size);
  try {
    return await fn(cluster.members, cluster);
  } finally {
    await cluster.close();
  }
}

/** A failed peer's cell; the whole message is in the workload's notes (see `fail`). */
export const ERROR_CELL = 'error (see notes)';

/** One row from every peer's outcome, with `pick` choosing the figure. */
export function row<T>(
  outcomes: Outcomes<T>,
  metric: string,
  unit: string,
  better: MetricRow['better'],
  pick: (value: T) => Cell,
  note?: string,
): MetricRow {
  const values: Partial<Record<PeerName, Cell>> = {};
  for (const [name, outcome] of Object.entries(outcomes) as Array<[PeerName, Outcome<T>]>) {
    values[name] = outcome.ok ? pick(outcome.value) : ERROR_CELL;
  }
  return note === undefined ? { metric, unit, better, values } : { metric, unit, better, values, note };
}
