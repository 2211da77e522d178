/** Every size, step and time limit of one run, so quick and full differ in one place only. */
export interface BenchConfig {
  readonly mode: 'quick' | 'full';
  readonly latency: {
    readonly readerCounts: readonly number[];
    readonly warmupEdits: number;
    /** Measured edits of a server over all its rounds. */
    readonly edits: number;
    /**
     * Rounds, each on a fresh server process, every other one in the reverse server order; an
     * even number, so that every server is measured first as often as last.
     */
    readonly rounds: number;
    /** How long one edit may take to reach every reader before it counts as lost. */
    readonly editTimeoutMs: number;
  };
  readonly fanout: {
    readonly docs: number;
    readonly clientsPerDoc: number;
    /** Offered rates in updates/s, tried in order until p99 passes the limit. */
    readonly rates: readonly number[];
    readonly stepMs: number;
    readonly p99LimitMs: number;
  };
  readonly connections: {
    /** Cumulative totals of idle connections at which the server's RSS is read. */
    readonly totals: readonly number[];
    readonly docs: number;
  };
  readonly traces: {
    /** Ops of automerge-paper to replay; null = all of them. */
    readonly paperOps: number | null;
    readonly replayTimeoutMs: number;
  };
  readonly coldStart: {
    readonly docs: number;
    readonly updatesPerDoc: number;
    /** Fresh processes per store; the report gives medians. */
    readonly rounds: number;
  };
  /** Many documents touched once, evicted, then some resubscribed over one socket. */
  readonly manyDocs: {
    readonly docs: number;
    /** Documents one client resubscribes to afterwards (≤ the relay's 1,000 per connection). */
    readonly resubscribe: number;
    /** Our relay's `docs.idleMs` for this workload (its default is 30 s). */
    readonly docIdleMs: number;
  };
  /** Our client in Chromium against y-indexeddb + y-websocket (the browser workload). */
  readonly browser: {
    readonly docs: number;
    /** Fresh browser contexts per peer; the report gives medians. */
    readonly rounds: number;
  };
  readonly durability: {
    readonly concurrency: readonly number[];
    readonly stepMs: number;
    readonly keys: number;
  };
  /** Several server processes on one PostgreSQL + Redis (workloads 7 and 8). */
  readonly cluster: {
    readonly latency: {
      readonly readerCounts: readonly number[];
      readonly warmupEdits: number;
      readonly edits: number;
      readonly editTimeoutMs: number;
    };
    readonly fanout: {
      /** Numbers of server processes the clients are spread over. */
      readonly sizes: readonly number[];
      readonly docs: number;
      readonly clientsPerDoc: number;
      readonly rates: readonly number[];
      readonly stepMs: number;
      readonly p99LimitMs: number;
    };
  };
  /** The whole run is abandoned (with what it has) after this long. */
  readonly runTimeoutMs: number;
}

const full: BenchConfig = {
  mode: 'full',
  // Four rounds of 250 edits: a server process's own luck (where its threads land, what its
  // compiler did first) moved a row by ±15% between runs of two rounds (bench/results-history.md).
  latency: { readerCounts: [1, 10, 100], warmupEdits: 30, edits: 1000, rounds: 4, editTimeoutMs: 2000 },
  fanout: {
    docs: 500,
    clientsPerDoc: 3,
    rates: [250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000],
    stepMs: 6000,
    p99LimitMs: 50,
  },
  connections: { totals: [1000, 5000, 10_000], docs: 100 },
  traces: { paperOps: null, replayTimeoutMs: 300_000 },
  coldStart: { docs: 1000, updatesPerDoc: 20, rounds: 5 },
  manyDocs: { docs: 10_000, resubscribe: 1000, docIdleMs: 2000 },
  browser: { docs: 1000, rounds: 3 },
  durability: { concurrency: [1, 16], stepMs: 8000, keys: 500 },
  cluster: {
    latency: { readerCounts: [1, 10], warmupEdits: 30, edits: 500, editTimeoutMs: 2000 },
    fanout: {
      sizes: [1, 2, 3],
      docs: 500,
      clientsPerDoc: 3,
      rates: [100, 250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000],
      stepMs: 6000,
      p99LimitMs: 50,
    },
  },
  runTimeoutMs: 60 * 60_000,
};

const quick: BenchConfig = {
  mode: 'quick',
  latency: { readerCounts: [1, 10, 100], warmupEdits: 20, edits: 150, rounds: 2, editTimeoutMs: 2000 },
  fanout: {
    docs: 100,
    clientsPerDoc: 3,
    rates: [500, 1000, 2000, 4000, 8000],
    stepMs: 2000,
    p99LimitMs: 50,
  },
  connections: { totals: [1000], docs: 100 },
  traces: { paperOps: 40_000, replayTimeoutMs: 60_000 },
  coldStart: { docs: 1000, updatesPerDoc: 20, rounds: 2 },
  manyDocs: { docs: 2000, resubscribe: 200, docIdleMs: 2000 },
  // Under Chromium's 255 WebSockets a page may hold, so y-websocket's one-socket-per-doc completes.
  browser: { docs: 200, rounds: 1 },
  durability: { concurrency: [1, 16], stepMs: 2000, keys: 200 },
  // Kept small: six deployments of up to three processes each fit in about a minute.
  cluster: {
    latency: { readerCounts: [1, 10], warmupEdits: 10, edits: 60, editTimeoutMs: 2000 },
    fanout: {
      sizes: [1, 2, 3],
      docs: 50,
      clientsPerDoc: 3,
      rates: [250, 1000, 2000, 4000],
      stepMs: 1000,
      p99LimitMs: 50,
    },
  },
  // The many-documents and browser workloads add about two minutes to the quick run.
  runTimeoutMs: 8 * 60_000,
};

/** The configuration for `--quick` or a full run. */
export function configFor(quickMode: boolean): BenchConfig {
  return quickMode ? quick : full;
}

/**
 * `config` with workload 3's totals taken from a `--connections=1000,5000` flag (ascending,
 * positive); unchanged without one. Measuring one size alone is cheaper than the full mode's three.
 */
export function withConnectionTotals(config: BenchConfig, flag: string | undefined): BenchConfig {
  if (flag === undefined) return config;
  const totals = flag.split(',').map(Number);
  if (totals.some((t, i) => !Number.isInteger(t) || t <= 0 || (i > 0 && t <= totals[i - 1]!))) {
    throw new Error(`--connections wants ascending positive totals, got ${flag}`);
  }
  return { ...config, connections: { ...config.connections, totals } };
}
