import { forEachPeer, row, type Workload, withCluster } from '../driver/workload.ts';
import type { MetricRow } from '../report.ts';
import { CLUSTER_STORE, clusterSetup, redact } from '../servers/cluster.ts';
import { type FanoutResult, ramp } from './fanout.ts';

/**
 * Workload 8: workload 2's ramp (sustained updates/s at p99 within the limit) with the clients
 * spread round-robin over N server processes on one PostgreSQL database and one Redis, for
 * each N in the configured sizes. Every size is a fresh deployment (new schema and prefix).
 */
export const clusterFanout: Workload = {
  id: 'cluster-fanout',
  title: '8. Fan-out across relays',
  async run(ctx) {
    const cfg = ctx.config.cluster.fanout;
    const setup = await clusterSetup(ctx.peers);
    if (!setup.ok) {
      return { id: this.id, title: this.title, rows: [], notes: [setup.note] };
    }
    const { backends, peers } = setup;
    const problemNotes: string[] = [];
    const outcomes = await forEachPeer(
      ctx,
      'fan-out across relays',
      async (name) => {
        const bySize = new Map<number, FanoutResult>();
        for (const size of cfg.sizes) {
          const result = await withCluster(ctx, name, size, async (members, cluster) => {
            const outcome = await ramp(members, cfg, ctx.log, `${name} ×${size}`);
            const lost = outcome.steps.reduce((n, step) => n + step.lost, 0);
            if (lost > 0) {
              const problems = await cluster.problems();
              problemNotes.push(
                `${name} on ${size} process${size > 1 ? 'es' : ''}: ${lost} updates never arrived during the ramp` +
                  (problems.length > 0
                    ? `; by the end of the ramp its processes had logged: ${problems.slice(0, 3).join('; ')}`
                    : '; by the end of the ramp its processes had logged no error or warning'),
              );
            }
            return outcome;
          });
          bySize.set(size, result);
        }
        return bySize;
      },
      peers,
    );
    const rows: MetricRow[] = [];
    for (const size of cfg.sizes) {
      const on = `${size} process${size > 1 ? 'es' : ''} (PG + Redis)`;
      rows.push(
        row(
          outcomes,
          `sustained updates/s at p99 ≤ ${cfg.p99LimitMs} ms, ${on}`,
          'updates/s',
          'higher',
          (m) => m.get(size)?.sustained ?? null,
        ),
        row(outcomes, `p99 at that rate, ${on}`, 'ms', null, (m) => {
          const r = m.get(size);
          return r && r.sustained > 0 ? r.p99AtSustained : null;
        }),
        row(outcomes, `ramp stopped by, ${on}`, '', null, (m) => {
          const r = m.get(size);
          if (!r) return null;
          return (r.steps.at(-1)?.lost ?? 0) > 0 ? 'lost updates' : r.stoppedBy;
        }),
        row(outcomes, `updates lost over the ramp, ${on}`, 'updates', 'lower', (m) => {
          const r = m.get(size);
          return r ? r.steps.reduce((n, step) => n + step.lost, 0) : null;
        }),
      );
    }
    return {
      id: this.id,
      title: this.title,
      rows,
      notes: [
        `${cfg.docs} docs × ${cfg.clientsPerDoc} clients, client i on process i mod N (so with N ≥ 2 every document has clients on several processes and most updates cross Redis); offered rates ${cfg.rates.join(', ')} updates/s after a 1 s warm-up, ${cfg.stepMs / 1000} s per step, a failed step retried once, as in workload 2.`,
        `Stores: every row runs on ${redact(backends.postgresUrl)} and ${redact(backends.redisUrl)}, each deployment in its own random schema and Redis prefix, dropped afterwards — scopesync: ${CLUSTER_STORE.scopesync}; Hocuspocus: ${CLUSTER_STORE.hocuspocus}. Workload 2's single-process rows use SQLite instead, so "1 process" here is not the same figure, and the store in the column headings does not apply to these rows.`,
        'All processes and the load generator share the two cores: more processes add Redis hops and context switches, not CPU. The figures show what the Redis path costs, not how a deployment scales on more machines.',
        '"updates lost" counts updates not applied by a reader within 1 s after their step ended, summed over the steps; a step with any lost has p99 = ∞.',
        'scopesync sends an update to the other processes as soon as it is applied (doc-updated, before its commit) and again with its seq once PostgreSQL has committed it (doc-committed), so a relay that missed the first still gets it; Hocuspocus applies and broadcasts in memory and stores the whole document on its debounce (2 s, max 10 s).',
        ...problemNotes,
      ],
      details: Object.fromEntries(
        Object.entries(outcomes).map(([name, o]) => [
          name,
          o.ok ? Object.fromEntries(o.value) : { error: o.error },
        ]),
      ),
    };
  },
};
