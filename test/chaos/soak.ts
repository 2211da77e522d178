import { randomBytes } from 'node:crypto';
import { type SeededRandom, seededRandom } from '@scopesync/testing';
import { call } from '../support/http-client.ts';
import { ENGINE_FAULTS, type EngineFault, type FaultOutcome, injectEngineFault } from './engine-faults.ts';
import { Ledger } from './ledger.ts';
import { type RelayGroup, startClusterGroup, startSqliteGroup } from './relay-groups.ts';
import { type Blocker, loopLag, type RelayRead, readPrivate, readRelays, summarize } from './settle-check.ts';
import { CLIENT_KINDS, type ClientKind, openSimClient, recoveryOf, type SimClient } from './sim-clients.ts';

// The soak: simulated clients of every kind over a cluster of relays (PostgreSQL + Redis) and
// one relay on SQLite, each behind a faulty proxy, making random edits on shared and private
// documents with random offline periods and restarts, while relays are killed, the engines
// fail and the network misbehaves. At the end every client of a document must hold what the
// relays serve, the relays must agree, and every write a client saw acknowledged must be in it.

/** Network faults the proxies inject during the soak. */
export interface NetworkChaos {
  /** Each chunk waits up to this long (order kept). */
  readonly delayMaxMs: number;
  /** Every so often a random share of the connections is cut (mid-frame when data flows). */
  readonly cutEveryMs: number;
  /** Every so often a few WebSocket connections freeze (half-open) until the relay drops them. */
  readonly freezeEveryMs: number;
  /** How long the relay may take to find a frozen connection before it counts as missed. */
  readonly freezeBoundMs: number;
}

/** What a soak run does. Every count and duration is bounded by these. */
export interface SoakOptions {
  readonly seed: number;
  readonly durationMs: number;
  readonly clients: number;
  readonly clusterRelays: number;
  /** Shared documents per group. */
  readonly sharedDocs: number;
  /** Edits per second over all clients. */
  readonly writesPerSecond: number;
  /** Share of our clients that also keep a private (encrypted) document. */
  readonly privateShare: number;
  /** Random offline periods and restarts of clients. */
  readonly clientChurn: boolean;
  /** `kill -9` of a random relay every so often, the cluster's first; null: none. */
  readonly killEveryMs: number | null;
  /** Whether a killed cluster relay is replaced by a new process (the SQLite one always restarts). */
  readonly replaceKilled: boolean;
  /**
   * An engine fault (Redis subscriptions killed, Redis paused, PostgreSQL connections killed,
   * PostgreSQL stopped) every so often.
   */
  readonly enginesEveryMs: number | null;
  /**
   * The cluster runs on a private PostgreSQL server which the `postgres-stopped` fault stops for
   * `outageMs` (first fault of the run, then in turn); null: on the shared server, never stopped.
   */
  readonly privatePostgres: { readonly outageMs: number } | null;
  readonly network: NetworkChaos | null;
  /** Relay heartbeat interval (the half-open detection bound is about twice this). */
  readonly pingIntervalMs: number;
  /** How long the end may take to converge. */
  readonly settleMs: number;
  /** Things that run alongside (the permission churn). */
  readonly addons?: readonly SoakAddon[];
  readonly log?: (line: string) => void;
}

/** What an add-on sees of the soak. */
export interface SoakContext {
  readonly groups: readonly RelayGroup[];
  readonly random: SeededRandom;
  readonly log: (line: string) => void;
  /** True while the soak's chaos phase runs. */
  running(): boolean;
}

/** Something that runs alongside the soak and checks its own invariant at the end. */
export interface SoakAddon {
  readonly name: string;
  /** Sets up before the chaos phase starts (after the clients opened). */
  prepare(ctx: SoakContext): Promise<void>;
  /** Runs during the chaos phase; resolves once it stopped (after `ctx.running()` turned false). */
  run(ctx: SoakContext): Promise<void>;
  /** After convergence: its figures and its violations (must be none). */
  finish(ctx: SoakContext): Promise<{ figures: Record<string, number>; violations: string[] }>;
}

/** The figures of one soak run. */
export interface SoakReport {
  readonly seed: number;
  readonly clients: Record<ClientKind, number>;
  readonly relays: { readonly cluster: number; readonly sqlite: number };
  readonly durationMs: number;
  readonly settleMs: number;
  readonly writes: number;
  readonly acked: number;
  /** Acknowledged writes missing from what the relays serve: must be empty. */
  readonly lost: string[];
  /** (client, document) pairs holding what the relays serve, out of all. */
  readonly converged: number;
  readonly pairs: number;
  /** Why pairs or relays did not converge: must be empty. */
  readonly divergent: string[];
  /** Documents (shared or private) that could not be read at the end, with why: must be empty. */
  readonly unread: string[];
  readonly kills: number;
  readonly engineFaults: Record<string, number>;
  /** Whether the cluster ran on a private PostgreSQL (false: it could not be made, or was not asked for). */
  readonly privatePostgres: boolean;
  /** Writes the relays refused while PostgreSQL was stopped (none may be acked). */
  readonly outageRefusals: number;
  readonly offlinePeriods: number;
  readonly restarts: number;
  readonly proxy: Record<string, number>;
  readonly addons: Record<string, Record<string, number>>;
  readonly violations: string[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs one soak with `options`; never throws for a finding (it is in the report), only for a broken set-up. */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => undefined);
  const root = seededRandom(options.seed);
  // One generator per concurrent loop, so each loop's choices replay from the seed.
  const derive = () => seededRandom(root.int(0, 0xffff_ffff));
  const runId = randomBytes(4).toString('hex');
  const relayFlags = ['--ping-interval-ms', String(options.pingIntervalMs)];
  const groups: RelayGroup[] = [];
  const clients: SimClient[] = [];
  const ledger = new Ledger();
  const counts = Object.fromEntries(CLIENT_KINDS.map((k) => [k, 0])) as Record<ClientKind, number>;
  const engineFaults: Record<string, number> = {};
  const engineViolations: string[] = [];
  let outageRefusals = 0;
  let kills = 0;
  let offlinePeriods = 0;
  let restarts = 0;
  let running = true;
  const ctx: SoakContext = { groups, random: derive(), log, running: () => running };
  const lag = loopLag();
  try {
    groups.push(
      await startClusterGroup(options.clusterRelays, derive(), relayFlags, options.privatePostgres !== null),
    );
    groups.push(await startSqliteGroup(derive(), relayFlags));
    log(`soak ${runId}: relays up (cluster ${options.clusterRelays} on PostgreSQL + Redis, 1 on SQLite)`);

    // A checker user per group reads what the relays serve.
    const checkerKeys = new Map<RelayGroup, string>();
    for (const g of groups) {
      const answer = await call(g.url, 'POST', '/keys', { body: { device_name: 'chaos-checker' } });
      if (answer.status !== 200) throw new Error(`registering on ${g.name}: ${answer.status}`);
      checkerKeys.set(g, answer.json.key as string);
    }
    const docsOf = new Map<RelayGroup, string[]>(
      groups.map((g) => [
        g,
        Array.from({ length: options.sharedDocs }, (_, i) => `PUBLIC_RW/_/chaos-${runId}-${g.name}-${i}`),
      ]),
    );
    const groupOf = new Map<SimClient, RelayGroup>();

    // Clients: three in four on the cluster, kinds mixed at random.
    const r = derive();
    const opening: Promise<void>[] = [];
    for (let i = 0; i < options.clients; i++) {
      const group = (i % 4 === 3 ? groups[1] : groups[0]) as RelayGroup;
      const kind = r.pick(CLIENT_KINDS);
      counts[kind] += 1;
      const shared = [r.pick(docsOf.get(group) as string[])];
      const privateDoc = kind !== 'stock' && r.next() < options.privateShare;
      const id = `c${i}`;
      opening.push(
        (async () => {
          const apiKey = kind === 'stock' ? (checkerKeys.get(group) as string) : undefined;
          const client = await openSimClient({
            id,
            kind,
            url: group.url,
            ...(apiKey === undefined ? {} : { apiKey }),
            shared,
            privateDoc,
            ledger,
          });
          clients.push(client);
          groupOf.set(client, group);
        })(),
      );
      // Opened in batches, so registration does not storm the relays.
      if (opening.length >= 20) await Promise.all(opening.splice(0));
    }
    await Promise.all(opening);
    log(`soak ${runId}: ${clients.length} clients open (${JSON.stringify(counts)})`);

    for (const a of options.addons ?? []) await a.prepare(ctx);
    const started = Date.now();
    const until = started + options.durationMs;
    const busy = new Set<SimClient>();
    const loops: Promise<void>[] = [];

    // Edits, offline periods and restarts.
    loops.push(
      (async () => {
        const w = derive();
        const tickMs = 50;
        let carry = 0;
        let last = Date.now();
        while (Date.now() < until) {
          const now = Date.now();
          carry += (options.writesPerSecond * (now - last)) / 1000;
          last = now;
          for (; carry >= 1; carry -= 1) {
            const client = w.pick(clients);
            if (busy.has(client)) continue;
            void client.write(w.pick(client.docs)).catch(() => undefined);
          }
          if (options.clientChurn && w.int(0, 19) === 0) {
            const client = w.pick(clients);
            if (!busy.has(client)) {
              busy.add(client);
              if (w.int(0, 3) === 0) {
                restarts += 1;
                void client
                  .restart()
                  .catch((error) => log(`restart of ${client.id} failed: ${String(error)}`))
                  .finally(() => busy.delete(client));
              } else {
                offlinePeriods += 1;
                client.offline();
                const back = w.int(300, 4000);
                setTimeout(() => {
                  client.online();
                  busy.delete(client);
                }, back);
              }
            }
          }
          await sleep(tickMs);
        }
      })(),
    );
    if (options.killEveryMs !== null) {
      const every = options.killEveryMs;
      loops.push(
        (async () => {
          derive(); // keeps the seeded streams of the loops after it where they were
          for (let i = 0; Date.now() + every < until; i++) {
            await sleep(every);
            // The cluster and the SQLite relay in turn, the cluster first.
            const group = groups[i % groups.length] as RelayGroup;
            await group.killOne(options.replaceKilled);
            kills += 1;
            log(`soak ${runId}: killed a relay of ${group.name} (kill ${kills})`);
          }
        })(),
      );
    }
    const cluster = groups[0]?.cluster;
    const database = groups[0]?.database ?? null;
    if (options.enginesEveryMs !== null && cluster) {
      const every = options.enginesEveryMs;
      const outageMs = options.privatePostgres?.outageMs ?? 0;
      loops.push(
        (async () => {
          // Every kind in turn (in a seeded order), so even a short run sees each one; a stop
          // of PostgreSQL first, as no other scenario stops the store.
          const shuffled = derive().shuffle(ENGINE_FAULTS.filter((f) => f !== 'postgres-stopped'));
          const order: EngineFault[] = database ? ['postgres-stopped', ...shuffled] : shuffled;
          let stops = 0;
          for (let i = 0; Date.now() + every < until; i++) {
            await sleep(every);
            const fault = order[i % order.length] as EngineFault;
            // A crash (no checkpoint, recovery at start) and a clean shutdown in turn.
            const stopMode = fault === 'postgres-stopped' && stops++ % 2 === 0 ? 'immediate' : 'fast';
            const outcome = await injectEngineFault({ cluster, database }, fault, {
              outageMs,
              stopMode,
            }).catch((error): FaultOutcome => {
              log(`engine fault ${fault} failed to inject: ${String(error)}`);
              return { hit: 0, violations: [] };
            });
            if (outcome.hit > 0) engineFaults[fault] = (engineFaults[fault] ?? 0) + 1;
            if (fault === 'postgres-stopped') log(`soak ${runId}: PostgreSQL stopped (${stopMode}) and back`);
            outageRefusals += outcome.refused ?? 0;
            engineViolations.push(...outcome.violations);
          }
        })(),
      );
    }
    if (options.network) {
      const net = options.network;
      for (const g of groups) g.proxy.setFaults({ delayMaxMs: net.delayMaxMs });
      loops.push(
        (async () => {
          const n = derive();
          let nextCut = Date.now() + net.cutEveryMs;
          let nextFreeze = Date.now() + net.freezeEveryMs;
          while (Date.now() < until) {
            await sleep(100);
            if (Date.now() >= nextCut) {
              nextCut += net.cutEveryMs;
              n.pick(groups).proxy.cut(n.pick([0.05, 0.2, 0.5]));
            }
            if (Date.now() >= nextFreeze) {
              nextFreeze += net.freezeEveryMs;
              n.pick(groups).proxy.freeze(0.1, net.freezeBoundMs);
            }
          }
        })(),
      );
    }
    const addonRuns = (options.addons ?? []).map((a) => a.run(ctx));
    await Promise.all(loops);
    running = false;
    await Promise.all(addonRuns);
    const durationMs = Date.now() - started;
    log(
      `soak ${runId}: chaos over after ${durationMs} ms, ${ledger.writes} writes, ${ledger.acks} acked so far, ` +
        `loop lag max ${lag.maxMs()} ms`,
    );
    lag.reset();

    // Settle: no more faults, every client online, wait until everything agrees.
    for (const g of groups) g.proxy.setFaults({ delayMaxMs: 0 });
    const settleStart = Date.now();
    while (busy.size > 0 && Date.now() - settleStart < options.settleMs) await sleep(100);
    for (const c of clients) c.online();
    const divergent: string[] = [];
    const lost: string[] = [];
    const unread: string[] = [];
    let pairs = 0;
    let converged = 0;
    let read: RelayRead | null = null;
    const reading = groups.map((g) => ({
      key: checkerKeys.get(g) as string,
      docs: docsOf.get(g) as string[],
      live: () => g.live(),
    }));
    // One pass of the check: every reason it does not pass yet. The relays' state is read
    // whole each time (a doc that could not be read is "could not read", never a loss).
    const check = async (): Promise<Blocker[]> => {
      const blockers: Blocker[] = [];
      read = await readRelays(reading);
      for (const [doc, why] of read.unread)
        blockers.push({ reason: 'could not read', line: `${doc}: ${why}` });
      for (const doc of read.disagree) blockers.push({ reason: 'relays disagree', line: doc });
      pairs = 0;
      converged = 0;
      for (const c of clients) {
        const g = groupOf.get(c) as RelayGroup;
        for (const doc of c.docs) {
          if (doc.startsWith('USER_PRIVATE/')) continue;
          pairs += 1;
          const served = read.state.get(doc);
          if (served === undefined) continue; // already counted as "could not read"
          const held = c.items(doc);
          if (JSON.stringify(held) === JSON.stringify(served)) {
            converged += 1;
            continue;
          }
          const reason = !c.isOnline
            ? 'client offline'
            : held.length < served.length
              ? 'client behind'
              : held.length > served.length
                ? 'client ahead'
                : 'client differs';
          blockers.push({
            reason,
            line: `${c.id} (${c.kind}, ${g.name}) on ${doc}: ${held.length} items, relay ${served.length} (${c.status()})`,
          });
        }
      }
      for (const c of clients)
        if (c.pending() > 0)
          blockers.push({
            reason: 'unacked',
            line: `${c.id} (${c.kind}): ${c.pending()} pending (${c.status()})`,
          });
      return blockers;
    };
    let blockers: Blocker[] = [];
    let lastSummary = Date.now();
    for (;;) {
      blockers = await check().catch((error) => [{ reason: 'check threw', line: String(error) }]);
      if (blockers.length === 0 || Date.now() - settleStart > options.settleMs) break;
      if (Date.now() - lastSummary >= 15_000) {
        lastSummary = Date.now();
        log(
          `soak ${runId}: settle +${Math.round((Date.now() - settleStart) / 1000)} s, ` +
            `loop lag max ${lag.maxMs()} ms, not yet: ${summarize(blockers)}`,
        );
        lag.reset();
      }
      await sleep(500);
    }
    if (blockers.length > 0) log(`soak ${runId}: settle gave up: ${summarize(blockers, 6)}`);
    divergent.push(...blockers.filter((b) => b.reason !== 'could not read').map((b) => b.line));
    const finalRead = read as RelayRead | null;
    for (const [doc, why] of finalRead?.unread ?? []) unread.push(`${doc}: ${why}`);
    const served = new Map(finalRead?.state ?? []);
    // Private documents: another device of each user reads them through the group, a few at a time.
    const privates = clients.flatMap((c) =>
      c.docs.filter((doc) => doc.startsWith('USER_PRIVATE/')).map((doc) => ({ c, doc })),
    );
    pairs += privates.length;
    const readOne = async (): Promise<void> => {
      for (let job = privates.shift(); job !== undefined; job = privates.shift()) {
        const { c, doc } = job;
        const g = groupOf.get(c) as RelayGroup;
        const got = await readPrivate(g.url, recoveryOf(c), doc, () => c.items(doc));
        const held = c.items(doc);
        if ('error' in got) {
          unread.push(`${c.id} (${c.kind}) private ${doc}: ${got.error} (${c.status()})`);
          continue;
        }
        served.set(doc, got.items);
        if (JSON.stringify(got.items) === JSON.stringify(held)) converged += 1;
        else
          divergent.push(
            `${c.id} (${c.kind}) private ${doc}: ${held.length} items, served ${got.items.length} (${c.status()})` +
              (got.refused.length > 0 ? `; the reader refused: ${got.refused.slice(0, 2).join(' | ')}` : ''),
          );
      }
    };
    await Promise.all(Array.from({ length: 4 }, readOne));
    // Loss only where the read was complete: an acked token of a doc that was read and lacks it.
    for (const e of ledger.entries()) {
      if (e.ackedAt === null) continue;
      const state = served.get(e.doc);
      if (state !== undefined && !state.includes(e.token)) lost.push(`${e.token} in ${e.doc}`);
    }
    const settleMs = Date.now() - settleStart;
    const addons: Record<string, Record<string, number>> = {};
    const violations: string[] = [];
    for (const a of options.addons ?? []) {
      const result = await a.finish(ctx);
      addons[a.name] = result.figures;
      violations.push(...result.violations.map((v) => `${a.name}: ${v}`));
    }
    for (const g of groups)
      for (const m of g.proxy.missed) violations.push(`half-open connection not dropped: ${m}`);
    violations.push(...engineViolations.map((v) => `engines: ${v}`));
    const proxy: Record<string, number> = {};
    for (const g of groups)
      for (const [k, v] of Object.entries(g.proxy.stats)) proxy[k] = (proxy[k] ?? 0) + v;
    return {
      seed: options.seed,
      clients: counts,
      relays: { cluster: options.clusterRelays, sqlite: 1 },
      durationMs,
      settleMs,
      writes: ledger.writes,
      acked: ledger.acks,
      lost,
      converged,
      pairs,
      divergent: [...divergent],
      unread,
      kills,
      engineFaults,
      privatePostgres: database !== null,
      outageRefusals,
      offlinePeriods,
      restarts,
      proxy,
      addons,
      violations,
    };
  } finally {
    running = false;
    lag.stop();
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled(groups.map((g) => g.close()));
  }
}
