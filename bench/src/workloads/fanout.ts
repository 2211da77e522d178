import * as Y from 'yjs';
import { closeClients, openClients } from '../driver/clients.ts';
import { summarize } from '../driver/stats.ts';
import type { SyncClient } from '../driver/sync-client.ts';
import { now, sleep } from '../driver/time.ts';
import { forEachPeer, row, type Workload, withPeer } from '../driver/workload.ts';
import type { Peer } from '../servers/peer.ts';

/** One step of the ramp. */
export interface FanoutStep {
  readonly offered: number;
  /** Updates actually sent per second (below `offered` when the load generator cannot keep up). */
  readonly sent: number;
  readonly p50: number;
  readonly p99: number;
  readonly lost: number;
  /**
   * The server's CPU (every process of a deployment, user + system) per update sent in this
   * step, in µs; null where /proc cannot be read. Near the ramp's end the load generator, not
   * the server, takes most of the two cores, so this says how much of them a server needs.
   */
  readonly serverCpuUs: number | null;
}

/** A ramp's outcome. */
export interface FanoutResult {
  readonly steps: FanoutStep[];
  /** Highest offered rate held with p99 within the limit, 0 if none. */
  readonly sustained: number;
  readonly p99AtSustained: number;
  /** Why the ramp stopped. */
  readonly stoppedBy: 'p99' | 'generator' | 'end of ramp';
}

/** A sent update some reader still has to apply. */
interface Pending {
  readonly clock: number;
  readonly sentAt: number;
}

/** FIFO of one writer's updates as seen by one reader (clocks only grow). */
class Inbox {
  items: Pending[] = [];
  head = 0;
  get size(): number {
    return this.items.length - this.head;
  }
}

/**
 * Workload 2: `docs` documents with `clientsPerDoc` clients each. Every update is one map
 * write by one client, sent round-robin across all clients at the offered rate; each
 * sample is the time until one other client of that document applied it. The rate doubles
 * (or steps up) until p99 passes the limit.
 */
export const fanout: Workload = {
  id: 'fanout',
  title: '2. Fan-out throughput',
  async run(ctx) {
    const cfg = ctx.config.fanout;
    const outcomes = await forEachPeer(ctx, 'fan-out', (name) =>
      withPeer(ctx, name, (peer) => ramp(peer, cfg, ctx.log)),
    );
    return {
      id: this.id,
      title: this.title,
      rows: [
        row(
          outcomes,
          `sustained updates/s at p99 ≤ ${cfg.p99LimitMs} ms`,
          'updates/s',
          'higher',
          (r) => r.sustained,
        ),
        row(outcomes, 'p99 at that rate', 'ms', null, (r) => (r.sustained > 0 ? r.p99AtSustained : null)),
        row(outcomes, 'ramp stopped by', '', null, (r) => r.stoppedBy),
        ...CPU_RATES.filter((rate) => cfg.rates.includes(rate)).map((rate) =>
          row(outcomes, `server CPU per update at ${rate.toLocaleString('en-US')}/s`, 'µs', 'lower', (r) =>
            serverCpuAt(r, rate, cfg),
          ),
        ),
      ],
      notes: [
        `${cfg.docs} docs × ${cfg.clientsPerDoc} clients (${cfg.docs * cfg.clientsPerDoc} sockets); offered rates ${cfg.rates.join(', ')} updates/s after a 1 s warm-up, ${cfg.stepMs / 1000} s per step, a failed step retried once; each update reaches ${cfg.clientsPerDoc - 1} other clients. An update not applied within 1 s after its step ends counts as ∞.`,
        '"generator" means the load generator could not send the offered rate (it shares the 2 cores with the server): that figure is a floor, not the server\'s limit.',
        `Server CPU per update: the server process's user + system time over a step (from /proc, 10 ms ticks) divided by the updates sent in it, read at ${CPU_RATES.map((r) => `${r.toLocaleString('en-US')}/s`).join(' and ')} (the step held, or its retry); none where the ramp stopped before that rate. Near the ramp's end the load generator takes most of the two cores, so the sustained rate says little about the server's own cost and this row says it.`,
      ],
      details: Object.fromEntries(
        Object.entries(outcomes).map(([name, o]) => [name, o.ok ? o.value : { error: o.error }]),
      ),
    };
  },
};

/** Offered rates at which the fan-out workload reports the server's CPU per update: ones every server reaches. */
const CPU_RATES = [2000, 4000] as const;

/** The server's CPU per update in the ramp's held step at `rate` (else its last step there), null when it never ran it. */
function serverCpuAt(result: FanoutResult, rate: number, cfg: RampConfig): number | null {
  const steps = result.steps.filter((s) => s.offered === rate);
  return (steps.find((s) => held(s, cfg)) ?? steps.at(-1))?.serverCpuUs ?? null;
}

/** Whether a step held its rate: p99 within the limit, and at least 90% of the offered rate sent. */
function held(step: FanoutStep, cfg: RampConfig): boolean {
  return step.p99 <= cfg.p99LimitMs && step.sent >= 0.9 * step.offered;
}

/** CPU seconds used so far by every process of a deployment, null when any cannot be read. */
async function serverCpuSeconds(peers: readonly Peer[]): Promise<number | null> {
  const readings = await Promise.all(peers.map((p) => p.cpuSeconds()));
  let total = 0;
  for (const seconds of readings) {
    if (seconds === null) return null;
    total += seconds;
  }
  return total;
}

/** The sizes and steps of one ramp. */
export interface RampConfig {
  readonly docs: number;
  readonly clientsPerDoc: number;
  readonly rates: readonly number[];
  readonly stepMs: number;
  readonly p99LimitMs: number;
}

/**
 * Ramps the offered rate on one server, or on several processes of one deployment with the
 * clients spread round-robin over them (client i on process i mod N, so with N > 1 every
 * document has clients on more than one process).
 */
export async function ramp(
  peers: Peer | readonly Peer[],
  cfg: RampConfig,
  log: (m: string) => void,
  label?: string,
): Promise<FanoutResult> {
  const targets: readonly Peer[] = Array.isArray(peers) ? peers : [peers as Peer];
  const name = label ?? targets[0]?.name ?? '?';
  const specs = Array.from({ length: cfg.docs * cfg.clientsPerDoc }, (_, i) => ({
    docName: `PUBLIC_RW/_/bench-fanout-${Math.floor(i / cfg.clientsPerDoc)}`,
  }));
  const clients = await openClients(targets, specs, 48);
  try {
    // inboxes[w][r]: updates written by client w that client r (same doc) has yet to apply.
    const inboxes = new Map<SyncClient, Map<SyncClient, Inbox>>();
    const samples: number[] = [];
    for (let d = 0; d < cfg.docs; d++) {
      const group = clients.slice(d * cfg.clientsPerDoc, (d + 1) * cfg.clientsPerDoc);
      for (const writer of group) {
        inboxes.set(writer, new Map(group.filter((r) => r !== writer).map((r) => [r, new Inbox()])));
      }
      for (const reader of group) {
        const from = group
          .filter((w) => w !== reader)
          .map((w) => [w.doc.clientID, inboxes.get(w)!.get(reader)!] as const);
        reader.doc.on('update', (_update: Uint8Array, origin: unknown) => {
          if (origin !== reader) return;
          const at = now();
          for (const [writerId, inbox] of from) {
            const have = Y.getState(reader.doc.store, writerId);
            while (inbox.head < inbox.items.length && inbox.items[inbox.head]!.clock <= have) {
              samples.push(at - inbox.items[inbox.head++]!.sentAt);
            }
            if (inbox.head > 1024 && inbox.head * 2 > inbox.items.length) {
              inbox.items = inbox.items.slice(inbox.head);
              inbox.head = 0;
            }
          }
        });
      }
    }
    const all = [...inboxes.values()].flatMap((m) => [...m.values()]);
    const steps: FanoutStep[] = [];
    let next = 0;
    let counter = 0;
    const write = (): void => {
      const writer = clients[next]!;
      next = (next + 1) % clients.length;
      const sentAt = now();
      writer.doc.getMap('m').set('v', ++counter);
      const clock = Y.getState(writer.doc.store, writer.doc.clientID);
      for (const inbox of inboxes.get(writer)!.values()) inbox.items.push({ clock, sentAt });
    };
    /** Sends at `offered` updates/s for `ms`. */
    const runFor = async (offered: number, ms: number): Promise<{ sent: number; elapsed: number }> => {
      const start = now();
      let sent = 0;
      while (now() - start < ms) {
        const due = Math.floor(((now() - start) / 1000) * offered) - sent;
        // A burst is capped so a stalled loop cannot dump a second's worth at once.
        for (let i = 0; i < Math.min(due, Math.ceil(offered / 50)); i++, sent++) write();
        await sleep(5);
      }
      return { sent, elapsed: now() - start };
    };
    /** Waits up to 1 s for every update to arrive; returns how many did not, and forgets them. */
    const drain = async (): Promise<number> => {
      const drainEnd = now() + 1000;
      while (all.some((inbox) => inbox.size > 0) && now() < drainEnd) await sleep(10);
      let lost = 0;
      for (const inbox of all) {
        lost += inbox.size;
        inbox.items = [];
        inbox.head = 0;
      }
      return lost;
    };
    // Warm-up at the first rate, not recorded: JIT and first-use allocations out of the way.
    await runFor(cfg.rates[0]!, Math.min(1000, cfg.stepMs));
    await drain();
    for (let r = 0, retried = false; r < cfg.rates.length; ) {
      const offered = cfg.rates[r]!;
      samples.length = 0;
      const cpuBefore = await serverCpuSeconds(targets);
      const { sent, elapsed } = await runFor(offered, cfg.stepMs);
      const lost = await drain();
      const cpuAfter = await serverCpuSeconds(targets);
      const summary = summarize(samples, lost);
      const step: FanoutStep = {
        offered,
        sent: (sent / elapsed) * 1000,
        p50: summary.p50,
        p99: summary.p99,
        lost,
        serverCpuUs:
          cpuBefore === null || cpuAfter === null || sent === 0
            ? null
            : ((cpuAfter - cpuBefore) * 1e6) / sent,
      };
      steps.push(step);
      log(
        `  ${name} ${offered}/s: sent ${step.sent.toFixed(0)}/s p50 ${step.p50.toFixed(1)} p99 ${step.p99.toFixed(1)} lost ${lost}`,
      );
      // Let the server settle between steps.
      await sleep(200);
      if (held(step, cfg)) {
        r++;
        retried = false;
      } else if (!retried) {
        // One retry of a failed step, so a single stall on a shared machine does not end the ramp.
        retried = true;
      } else {
        break;
      }
    }
    const best = steps.filter((s) => held(s, cfg)).at(-1);
    const last = steps[steps.length - 1]!;
    const stoppedBy =
      last.p99 > cfg.p99LimitMs ? 'p99' : last.sent < 0.9 * last.offered ? 'generator' : 'end of ramp';
    return { steps, sustained: best?.offered ?? 0, p99AtSustained: best?.p99 ?? Number.NaN, stoppedBy };
  } finally {
    await closeClients(clients);
  }
}
