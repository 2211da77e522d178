import type { LatencySummary } from '../driver/stats.ts';
import { forEachPeer, row, type Workload, withCluster, withPeer } from '../driver/workload.ts';
import type { MetricRow } from '../report.ts';
import { CLUSTER_STORE, clusterSetup, redact } from '../servers/cluster.ts';
import { measureLatency } from './edit-latency.ts';

/** Where the writer and readers sit, in the order the rows are reported. */
const PLACEMENTS = ['single', 'same', 'across'] as const;
type Placement = (typeof PLACEMENTS)[number];

/** Row labels; the notes say what each deployment is. */
const PLACEMENT_LABEL: Record<Placement, string> = {
  single: '1 process (SQLite)',
  same: '2 processes (PG + Redis), all on process 1',
  across: '2 processes (PG + Redis), writer on 1, readers on 2',
};

/** Summaries by placement, then by reader count. */
type Measured = Map<Placement, Map<number, LatencySummary>>;

/** The published figure this workload is read against (not measured here). */
export const Y_REDIS_ANCHOR =
  'Published anchor, not measured here (context only): y-redis/yhub report 2.8 ms p50 / 4.4 ms p95 propagation for one writer across its Redis path, on a laptop with local Redis and PostgreSQL.';

/**
 * Workload 7: workload 1's writer and readers of one document, but with the writer on one
 * server process and the readers on another, both on one PostgreSQL database and fanned out
 * through Redis — next to the same measurement with everyone on one process of that
 * deployment, and on the stock single-process setup (SQLite) for reference.
 */
export const crossRelayLatency: Workload = {
  id: 'cross-relay-latency',
  title: '7. Edit latency across relays',
  async run(ctx) {
    const cfg = ctx.config.cluster.latency;
    const setup = await clusterSetup(ctx.peers);
    if (!setup.ok) {
      return { id: this.id, title: this.title, rows: [], notes: [setup.note, Y_REDIS_ANCHOR] };
    }
    const { backends, peers } = setup;
    const options = { warmupEdits: cfg.warmupEdits, edits: cfg.edits, editTimeoutMs: cfg.editTimeoutMs };
    const outcomes = await forEachPeer(
      ctx,
      'edit latency across relays',
      async (name) => {
        const measured: Measured = new Map(PLACEMENTS.map((p) => [p, new Map()]));
        await withPeer(ctx, name, async (peer) => {
          for (const readers of cfg.readerCounts) {
            measured
              .get('single')!
              .set(readers, await measureLatency({ writer: peer, readers: peer }, readers, options));
          }
        });
        await withCluster(ctx, name, 2, async ([first, second]) => {
          for (const readers of cfg.readerCounts) {
            const same = await measureLatency(
              { writer: first!, readers: first! },
              readers,
              options,
              `PUBLIC_RW/_/bench-latency-same-${readers}`,
            );
            measured.get('same')!.set(readers, same);
            const across = await measureLatency(
              { writer: first!, readers: second! },
              readers,
              options,
              `PUBLIC_RW/_/bench-latency-across-${readers}`,
            );
            measured.get('across')!.set(readers, across);
            ctx.log(
              `  ${name} ${readers} reader(s): same process p50 ${same.p50.toFixed(2)} p99 ${same.p99.toFixed(2)}; across p50 ${across.p50.toFixed(2)} p99 ${across.p99.toFixed(2)} (lost ${same.lost}/${across.lost})`,
            );
          }
        });
        return measured;
      },
      peers,
    );
    const rows: MetricRow[] = [];
    for (const placement of PLACEMENTS) {
      for (const readers of cfg.readerCounts) {
        for (const q of ['p50', 'p99'] as const) {
          rows.push(
            row(
              outcomes,
              `${q}, ${readers} reader${readers > 1 ? 's' : ''}, ${PLACEMENT_LABEL[placement]}`,
              'ms',
              'lower',
              (m) => m.get(placement)?.get(readers)?.[q] ?? null,
            ),
          );
        }
      }
    }
    const lost = Object.entries(outcomes).flatMap(([name, o]) =>
      o.ok
        ? [...o.value].flatMap(([placement, byReaders]) =>
            [...byReaders]
              .filter(([, s]) => s.lost > 0)
              .map(
                ([readers, s]) =>
                  `${name}, ${PLACEMENT_LABEL[placement]}, ${readers} reader(s): ${s.lost} of ${s.count} arrivals lost`,
              ),
          )
        : [],
    );
    return {
      id: this.id,
      title: this.title,
      rows,
      notes: [
        `${cfg.edits} single-character edits after ${cfg.warmupEdits} warm-up edits, measured as in workload 1 (local change → remote apply, one clock; an edit not applied within ${cfg.editTimeoutMs} ms counts as ∞). Each deployment runs alone, one after the other.`,
        `Stores: the "1 process (SQLite)" rows are the stock single-process setups of workload 1 (scopesync: createRelay with a data dir, SQLite; Hocuspocus: its SQLite extension). The "2 processes (PG + Redis)" rows run on ${redact(backends.postgresUrl)} and ${redact(backends.redisUrl)}, each deployment in its own random schema and Redis prefix, dropped afterwards — scopesync: ${CLUSTER_STORE.scopesync}; Hocuspocus: ${CLUSTER_STORE.hocuspocus} (the SQLite in the Hocuspocus column heading does not apply to them).`,
        '"all on process 1" is the same two-process deployment with everyone on one process: the cost of PostgreSQL + Redis without the hop between processes. y-websocket has no multi-process mode and is not run here.',
        "How a change crosses: Hocuspocus + extension-redis announces it with a SyncStep1 on the document's channel, the other instance answers with its own SyncStep1, and the first sends the missing update as SyncStep2 — three Redis messages before the readers see it. scopesync publishes the update once on its Redis channel as soon as it is applied (before its commit; the commit follows with its seq).",
        Y_REDIS_ANCHOR,
        ...lost,
      ],
      details: Object.fromEntries(
        Object.entries(outcomes).map(([name, o]) => [
          name,
          o.ok
            ? Object.fromEntries([...o.value].map(([p, byReaders]) => [p, Object.fromEntries(byReaders)]))
            : { error: o.error },
        ]),
      ),
    };
  },
};
