/**
 * `npm run bench` / `npm run bench:quick`: runs every workload against scopesync, the
 * reference y-websocket server and Hocuspocus, one server at a time on loopback, and writes
 * results.md and results.json to bench/out/.
 *
 * Flags: --quick, --only=<workload id,...>, --peers=<name,...>, --keep (keep the temp dir),
 * --out=<dir> (write results.md/json there instead of bench/out/),
 * --connections=<total,...> (workload 3's totals instead of the mode's, e.g. 1000,5000).
 */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { configFor, withConnectionTotals } from './config.ts';
import type { Workload, WorkloadContext } from './driver/workload.ts';
import { DEFAULT_OUT_DIR, makeRunDir, removeDir } from './paths.ts';
import { type RunReport, type WorkloadReport, writeReport } from './report.ts';
import { clusterBackends, startCluster } from './servers/cluster.ts';
import { START } from './servers/index.ts';
import { PEER_NAMES, type PeerName, type RelayStoreKind } from './servers/peer.ts';
import { browserWorkload } from './workloads/browser.ts';
import { bundleSize } from './workloads/bundle-size.ts';
import { clusterFanout } from './workloads/cluster-fanout.ts';
import { coldStart } from './workloads/cold-start.ts';
import { connections } from './workloads/connections.ts';
import { crossRelayLatency } from './workloads/cross-relay-latency.ts';
import { durability } from './workloads/durability.ts';
import { editLatency } from './workloads/edit-latency.ts';
import { editingTraces } from './workloads/editing-traces.ts';
import { encryptionCost } from './workloads/encryption-cost.ts';
import { fanout } from './workloads/fanout.ts';
import { manyDocuments } from './workloads/many-documents.ts';

const WORKLOADS: readonly Workload[] = [
  editLatency,
  fanout,
  connections,
  manyDocuments,
  editingTraces,
  coldStart,
  browserWorkload,
  durability,
  encryptionCost,
  crossRelayLatency,
  clusterFanout,
  bundleSize,
];

/** The filesystem the servers' data lives on (fsync cost depends on it), e.g. "ext4 on /dev/vda". */
function filesystemOf(dir: string): string {
  try {
    const line = execFileSync('df', ['-T', dir], { encoding: 'utf8' }).trim().split('\n').at(-1) ?? '';
    const [device, type] = line.split(/\s+/);
    return `${type} on ${device}`;
  } catch {
    return 'unknown';
  }
}

function flag(name: string): string | undefined {
  const prefix = `--${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

/** `--relay-store`: `sqlite` (the default, as shipped) or `memory` (see PeerOptions.relayStore). */
function relayStoreFlag(value: string | undefined): RelayStoreKind {
  if (value === undefined || value === 'sqlite' || value === 'memory') return value ?? 'sqlite';
  throw new Error(`--relay-store takes sqlite or memory, not ${value}`);
}

async function main(): Promise<void> {
  const config = withConnectionTotals(configFor(process.argv.includes('--quick')), flag('connections'));
  const only = flag('only')?.split(',');
  const peers = (flag('peers')?.split(',') ?? [...PEER_NAMES]) as PeerName[];
  for (const p of peers) if (!PEER_NAMES.includes(p)) throw new Error(`unknown peer ${p}`);
  const workloads = WORKLOADS.filter((w) => !only || only.includes(w.id));
  for (const id of only ?? [])
    if (!WORKLOADS.some((w) => w.id === id)) throw new Error(`unknown workload ${id}`);
  const relayStore = relayStoreFlag(flag('relay-store'));
  const outDir = resolve(flag('out') ?? DEFAULT_OUT_DIR);
  await mkdir(outDir, { recursive: true });
  const runDir = await makeRunDir();
  const backends = clusterBackends();
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const log = (message: string): void => {
    console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}`);
  };
  let instances = 0;
  let failures: string[] = [];
  const ctx: WorkloadContext = {
    config,
    peers,
    log,
    fail: (message) => failures.push(message),
    async startPeer(name, dataDir, settings) {
      const n = ++instances;
      const dir = dataDir ?? join(runDir, `${n}-${name}`);
      await mkdir(dir, { recursive: true });
      const peer = await START[name]({
        dataDir: dir,
        logFile: join(runDir, `${n}-${name}.log`),
        relayStore,
        ...settings,
      });
      return { peer, dataDir: dir };
    },
    startCluster(name, size) {
      const n = ++instances;
      return startCluster(name, {
        size,
        backends,
        logFile: (i) => join(runDir, `${n}-${name}-cluster-${i + 1}.log`),
      });
    },
  };
  const reports: WorkloadReport[] = [];
  // Other work on the machine skews every figure; the load average says how much there was.
  const loadAtStart = loadavg()[0]!.toFixed(2);
  const report = (complete: boolean): RunReport => ({
    mode: config.mode,
    startedAt,
    durationS: (performance.now() - started) / 1000,
    machine: {
      node: process.version,
      cpus: `${cpus().length}× ${cpus()[0]?.model.trim() ?? '?'}`,
      memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
      platform: process.platform,
      'data on': filesystemOf(runDir),
      'load average (1 min) at start / end': `${loadAtStart} / ${loadavg()[0]!.toFixed(2)}`,
      'load generator heap flags': loadGeneratorHeapFlags(),
      ...(relayStore === 'memory'
        ? { 'scopesync stores': 'memory only (--relay-store=memory, a diagnostic)' }
        : {}),
    },
    workloads: reports,
    complete,
    config,
  });
  // The run stops by itself: past its time limit it writes what it has and exits.
  const watchdog = setTimeout(() => {
    log(`run exceeded ${config.runTimeoutMs / 1000} s; writing partial results`);
    void writeReport(outDir, report(false)).finally(() => process.exit(2));
  }, config.runTimeoutMs);
  watchdog.unref();
  log(`mode ${config.mode}; peers ${peers.join(', ')}; server data and logs in ${runDir}`);
  try {
    for (const workload of workloads) {
      log(`— ${workload.title}`);
      failures = [];
      const result = await workload.run(ctx);
      reports.push({ ...result, notes: [...result.notes, ...failures] });
      await writeReport(outDir, report(false));
    }
    await writeReport(outDir, report(true));
    log(`wrote ${join(outDir, 'results.md')} and results.json`);
  } finally {
    clearTimeout(watchdog);
    if (process.argv.includes('--keep')) log(`kept ${runDir}`);
    else await removeDir(runDir);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

/**
 * The V8 heap flags the load generator runs with. Its scavenges pause every client it drives, so
 * they are part of every latency it reads; the npm scripts set a 64 MiB semi-space (README).
 */
function loadGeneratorHeapFlags(): string {
  const flags = process.execArgv.filter((a) => /^--max-(semi|old)-space-size/.test(a));
  return flags.length > 0 ? flags.join(' ') : "Node's defaults (not run through the npm scripts)";
}
