import { type LatencySummary, summarize } from '../driver/stats.ts';
import { now } from '../driver/time.ts';
import { forEachPeer, row, type Workload, withPeer } from '../driver/workload.ts';
import type { MetricRow } from '../report.ts';
import type { Peer } from '../servers/peer.ts';

interface DurabilityStep {
  readonly concurrency: number;
  readonly writesPerSecond: number;
  readonly latency: LatencySummary;
  readonly failed: number;
}

/**
 * Workload 6: acknowledged HTTP writes per second. Ours: POST /userdata/_/PUBLIC_RW/<key>,
 * answered after the SQLite commit. Hocuspocus has no write API; its closest equivalent is
 * a server-side direct-connection write that runs its store hook at once (see its note).
 * y-websocket has neither and is reported n/a.
 */
export const durability: Workload = {
  id: 'durability',
  title: '6. Durability cost',
  async run(ctx) {
    const cfg = ctx.config.durability;
    const outcomes = await forEachPeer(ctx, 'durability', (name) =>
      withPeer(ctx, name, async (peer) => {
        if (peer.ackedWrite === null) return null;
        const key = await peer.register('bench-durability');
        const steps: DurabilityStep[] = [];
        for (const concurrency of cfg.concurrency)
          steps.push(await measure(peer, key, concurrency, cfg.stepMs, cfg.keys));
        return steps;
      }),
    );
    const rows: MetricRow[] = [];
    cfg.concurrency.forEach((concurrency, i) => {
      rows.push(
        row(outcomes, `acked writes/s, ${concurrency} in flight`, 'writes/s', 'higher', (s) =>
          s === null ? 'n/a' : (s[i]?.writesPerSecond ?? null),
        ),
      );
      rows.push(
        row(outcomes, `p99 write latency, ${concurrency} in flight`, 'ms', 'lower', (s) =>
          s === null ? 'n/a' : (s[i]?.latency.p99 ?? null),
        ),
      );
    });
    const notes = [
      `Each write stores a small JSON value ({n, text: 64 chars}) under one of ${cfg.keys} keys in turn, ${cfg.stepMs / 1000} s per concurrency level, over keep-alive HTTP on loopback. Failed (non-2xx) writes are not counted.`,
    ];
    for (const name of ctx.peers) {
      const note = durabilityNote(name);
      if (note) notes.push(note);
    }
    return {
      id: this.id,
      title: this.title,
      rows,
      notes,
      details: Object.fromEntries(
        Object.entries(outcomes).map(([name, o]) => [name, o.ok ? o.value : { error: o.error }]),
      ),
    };
  },
};

function durabilityNote(name: string): string | null {
  switch (name) {
    case 'scopesync':
      return "scopesync: POST /userdata answers once the SQLite transaction holding the write has committed (the relay's commit policy).";
    case 'hocuspocus':
      return "Hocuspocus: not like for like. It has no HTTP write API; a bench route in its process writes through openDirectConnection().transact(), which runs the SQLite extension's store hook at once, and that hook does not await its INSERT — so its ack promises less than ours, and its figure is an upper bound.";
    case 'y-websocket':
      return 'y-websocket: n/a — no acknowledged write of any kind (its y-leveldb writes are fire-and-forget).';
    default:
      return null;
  }
}

async function measure(
  peer: Peer,
  apiKey: string | undefined,
  concurrency: number,
  stepMs: number,
  keys: number,
): Promise<DurabilityStep> {
  const target = peer.ackedWrite!;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (apiKey !== undefined) headers['x-api-key'] = apiKey;
  const samples: number[] = [];
  let failed = 0;
  let n = 0;
  const start = now();
  const end = start + stepMs;
  const worker = async (): Promise<void> => {
    while (now() < end) {
      const i = n++;
      const body = JSON.stringify({ value: { n: i, text: 'x'.repeat(64) } });
      const sent = now();
      try {
        const response = await fetch(target.url(`bench-durability-${i % keys}`), {
          method: 'POST',
          headers,
          body,
        });
        await response.arrayBuffer();
        if (response.ok) samples.push(now() - sent);
        else failed++;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = now() - start;
  if (samples.length === 0) throw new Error(`no write succeeded (${failed} failed)`);
  return {
    concurrency,
    writesPerSecond: (samples.length / elapsed) * 1000,
    latency: summarize(samples),
    failed,
  };
}
