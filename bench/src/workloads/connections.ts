import { execFileSync } from 'node:child_process';
import { openClients, registerMany } from '../driver/clients.ts';
import { settledRss } from '../driver/settled-rss.ts';
import type { SyncClient } from '../driver/sync-client.ts';
import { now, sleep } from '../driver/time.ts';
import { forEachPeer, row, type Workload, type WorkloadContext, withPeer } from '../driver/workload.ts';
import type { MetricRow } from '../report.ts';
import type { Peer } from '../servers/peer.ts';

/** RSS readings of one peer. */
interface ConnectionsResult {
  readonly baseRss: number;
  /** By total connections: RSS, and seconds spent opening all of them (the pauses to read RSS left out). */
  readonly at: Map<number, ConnectionsStep>;
}

/** One total's readings. */
interface ConnectionsStep {
  readonly rss: number;
  readonly openSeconds: number;
  /**
   * Server CPU milliseconds per connection opened in this step (from the previous total to this
   * one), null where /proc cannot be read: steadier than the time to open on a shared machine,
   * since it counts the server's own work, not how long a busy machine took.
   */
  readonly cpuMsPerConnection: number | null;
}

const MIB = 2 ** 20;
/** Descriptors kept free for files, pipes and the HTTP sockets of key registration. */
const FD_HEADROOM = 256;
/** Connections the load generator opens against each server's throwaway start before any measurement. */
const WARMUP_CONNECTIONS = 2000;
/** Sockets one warm-up key opens: under our relay's default of 256 sockets per caller. */
const WARMUP_SOCKETS_PER_KEY = 200;

/** The soft open-file limit this process (and the server children it forks) runs with. */
function openFileLimit(): number {
  try {
    const value = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return value === 'unlimited' ? Number.POSITIVE_INFINITY : Number(value);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/**
 * Workload 3: idle synced clients held open, spread over a fixed set of documents; the
 * server's RSS is read (after a GC in the server) before any client and at each total.
 */
export const connections: Workload = {
  id: 'connections',
  title: '3. Idle connections',
  async run(ctx) {
    const { docs } = ctx.config.connections;
    // Each connection holds a descriptor here and one in the server (same limit, inherited).
    const limit = openFileLimit();
    const totals = ctx.config.connections.totals.filter((t) => t + FD_HEADROOM <= limit);
    const skipped = ctx.config.connections.totals.filter((t) => !totals.includes(t));
    const max = totals[totals.length - 1] ?? 0;
    await warmLoadGenerator(ctx, Math.min(WARMUP_CONNECTIONS, max), docs);
    const outcomes = await forEachPeer(ctx, 'connections', async (name) => {
      // Keys are registered on a first start of the server, which is then restarted on the same
      // data: the idle RSS is of a process that, like the peers', has served nothing yet, not of
      // one whose heap grew by an uneven amount through thousands of registrations (the peers
      // register nothing), which then hid part of the connections' memory.
      const { keys, dataDir } = await withPeer(ctx, name, async (peer, dir) => {
        const registered = await registerMany(peer, max, 'bench-idle');
        await peer.close({ flush: true });
        return { keys: registered, dataDir: dir };
      });
      return withPeer(
        ctx,
        name,
        (peer) => measure(peer, totals, docs, keys, (m) => ctx.log(`connections: ${m}`)),
        dataDir,
      );
    });
    const rows: MetricRow[] = [];
    for (const total of totals) {
      rows.push(
        row(outcomes, `RSS per connection at ${total.toLocaleString('en-US')}`, 'KiB', 'lower', (r) => {
          const at = r.at.get(total);
          return at ? (at.rss - r.baseRss) / total / 1024 : null;
        }),
      );
      rows.push(
        row(
          outcomes,
          `server RSS at ${total.toLocaleString('en-US')}`,
          'MiB',
          'lower',
          (r) => (r.at.get(total)?.rss ?? Number.NaN) / MIB,
        ),
      );
    }
    rows.push(row(outcomes, 'server RSS idle', 'MiB', null, (r) => r.baseRss / MIB));
    for (const total of totals) {
      rows.push(
        row(
          outcomes,
          `time to open and sync ${total.toLocaleString('en-US')}`,
          's',
          'lower',
          (r) => r.at.get(total)?.openSeconds ?? null,
        ),
      );
    }
    totals.forEach((total, i) => {
      const from = i === 0 ? 0 : (totals[i - 1] as number);
      rows.push(
        row(
          outcomes,
          `server CPU per connection opened, ${from.toLocaleString('en-US')} → ${total.toLocaleString('en-US')}`,
          'ms',
          'lower',
          (r) => r.at.get(total)?.cpuMsPerConnection ?? null,
        ),
      );
    });
    return {
      id: this.id,
      title: this.title,
      rows,
      notes: [
        `Clients spread over ${docs} documents, each synced and then idle; RSS per connection = (RSS at N − idle RSS) / N, each read from /proc after a full GC in the server process, every 2 s until the readings of 10 s lie within 1 MiB (at most 60 s): V8 keeps the young generation it grew while the sockets opened until its memory reducer finds the process idle, which at 1,000 sockets was worth 5–13 KiB a connection (2026-12-05, all three servers), of whatever size each server's young generation had reached. scopesync clients each registered their own key first, on an earlier start of the server: every server is restarted on its data before the idle RSS is read, so registration is in neither the idle RSS nor the time to open.`,
        `Before any measurement the load generator opened and dropped ${Math.min(WARMUP_CONNECTIONS, max).toLocaleString('en-US')} connections on a throwaway start of each server, so that the first server measured does not pay for the load generator's own warm-up.`,
        `Open file limit (ulimit -n) ${Number.isFinite(limit) ? limit : 'unlimited'}: each connection holds one descriptor in the bench and one in the server.${skipped.length > 0 ? ` Skipped ${skipped.join(', ')}: over the limit.` : ''}`,
      ],
      details: Object.fromEntries(
        Object.entries(outcomes).map(([name, o]) => [
          name,
          o.ok ? { baseRss: o.value.baseRss, at: Object.fromEntries(o.value.at) } : { error: o.error },
        ]),
      ),
    };
  },
};

/**
 * Opens and drops `count` connections on a throwaway start of every server, so that the load
 * generator's own code (its WebSocket client, the sync client, Yjs) is optimised before the first
 * measurement. Without it the first server measured paid for that: run in the two orders, the
 * same two servers' times to open 1,000 traded places (1.49× with ours first, 0.79× second).
 */
async function warmLoadGenerator(ctx: WorkloadContext, count: number, docs: number): Promise<void> {
  if (count === 0) return;
  for (const name of ctx.peers) {
    const started = performance.now();
    try {
      await withPeer(ctx, name, async (peer) => {
        const keys = await registerMany(peer, Math.ceil(count / WARMUP_SOCKETS_PER_KEY), 'bench-warmup');
        const specs = Array.from({ length: count }, (_, i) => ({
          docName: `PUBLIC_RW/_/bench-conn-${i % docs}`,
          key: keys[i % keys.length],
        }));
        for (const client of await openClients(peer, specs, 64, 120_000)) client.terminate();
      });
      ctx.log(
        `connections: load generator warmed on ${name} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
    } catch (error) {
      // Only a warm-up: the measurement that follows says whether this server works.
      const message = error instanceof Error ? error.message : String(error);
      ctx.log(`connections: warming the load generator on ${name} failed (${message}); measuring anyway`);
    }
  }
}

async function measure(
  peer: Peer,
  totals: readonly number[],
  docs: number,
  keys: ReadonlyArray<string | undefined>,
  log: (message: string) => void,
): Promise<ConnectionsResult> {
  // One client open and closed first, so code paths loaded on first use are in the baseline.
  const [warm] = await openClients(peer, [{ docName: 'PUBLIC_RW/_/bench-conn-warmup', key: keys[0] }]);
  await warm!.close();
  await sleep(500);
  const baseRss = (await settledRss(peer, log)).bytes;
  const clients: SyncClient[] = [];
  const at = new Map<number, ConnectionsStep>();
  try {
    let openMs = 0;
    for (const total of totals) {
      const start = now();
      const cpuBefore = await peer.cpuSeconds();
      const opened = total - clients.length;
      const specs = [];
      for (let i = clients.length; i < total; i++) {
        specs.push({ docName: `PUBLIC_RW/_/bench-conn-${i % docs}`, key: keys[i] });
      }
      clients.push(...(await openClients(peer, specs, 64, 300_000)));
      openMs += now() - start;
      const openSeconds = openMs / 1000;
      const cpuAfter = await peer.cpuSeconds();
      const cpuMsPerConnection =
        cpuBefore === null || cpuAfter === null ? null : ((cpuAfter - cpuBefore) * 1000) / opened;
      at.set(total, { rss: (await settledRss(peer, log)).bytes, openSeconds, cpuMsPerConnection });
    }
    return { baseRss, at };
  } finally {
    // Dropped at once: how fast 5,000 sockets close is not what this workload measures.
    for (const client of clients) client.terminate();
  }
}
