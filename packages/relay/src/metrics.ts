/** A monotonically increasing count. */
export interface Counter {
  inc(by?: number): void;
}

/** A family of counters told apart by one label (`scopesync_events_total{type="…"}`). */
export interface LabeledCounter {
  /** The counter for one value of the label. */
  labels(value: string): Counter;
}

/** A value that goes up and down. */
export interface Gauge {
  set(value: number): void;
  inc(by?: number): void;
  dec(by?: number): void;
}

/** A distribution of observations (e.g. latencies in seconds), exported as a Prometheus histogram. */
export interface Histogram {
  observe(value: number): void;
}

type Metric =
  | { type: 'counter'; help: string; value: number }
  | { type: 'labeled-counter'; help: string; label: string; values: Map<string, number> }
  | { type: 'gauge'; help: string; value: number; read?: () => number }
  | {
      type: 'histogram';
      help: string;
      buckets: readonly number[];
      counts: number[];
      sum: number;
      count: number;
    };

const DEFAULT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The relay's metrics registry, rendered as Prometheus text at GET /metrics. Names are registered once. */
export class Metrics {
  readonly #metrics = new Map<string, Metric>();

  /** Registers (or returns the existing) counter `name`. */
  counter(name: string, help: string): Counter {
    const m = this.#get(name, () => ({ type: 'counter', help, value: 0 }));
    return {
      inc: (by = 1) => {
        m.value += by;
      },
    };
  }

  /**
   * Registers (or returns the existing) family of counters `name` with one label. The
   * `initial` values are listed (at 0) before anything is counted, so dashboards see them.
   */
  labeledCounter(name: string, help: string, label: string, initial: readonly string[] = []): LabeledCounter {
    const m = this.#get(name, () => ({ type: 'labeled-counter', help, label, values: new Map() })) as Extract<
      Metric,
      { type: 'labeled-counter' }
    >;
    for (const value of initial) if (!m.values.has(value)) m.values.set(value, 0);
    return {
      labels: (value) => ({
        inc: (by = 1) => {
          m.values.set(value, (m.values.get(value) ?? 0) + by);
        },
      }),
    };
  }

  /** Registers a gauge; with `read`, its value is sampled at render time instead of set. */
  gauge(name: string, help: string, read?: () => number): Gauge {
    const m = this.#get(name, () =>
      read ? { type: 'gauge', help, value: 0, read } : { type: 'gauge', help, value: 0 },
    );
    return {
      set: (v) => {
        m.value = v;
      },
      inc: (by = 1) => {
        m.value += by;
      },
      dec: (by = 1) => {
        m.value -= by;
      },
    };
  }

  /** Registers a histogram with the given upper bucket bounds (default: latency buckets in seconds). */
  histogram(name: string, help: string, buckets: readonly number[] = DEFAULT_BUCKETS): Histogram {
    const m = this.#get(name, () => ({
      type: 'histogram',
      help,
      buckets,
      counts: buckets.map(() => 0),
      sum: 0,
      count: 0,
    }));
    return {
      observe: (v) => {
        const h = m as Extract<Metric, { type: 'histogram' }>;
        h.sum += v;
        h.count += 1;
        h.buckets.forEach((bound, i) => {
          if (v <= bound) h.counts[i] = (h.counts[i] ?? 0) + 1;
        });
      },
    };
  }

  /** The registry in the Prometheus text exposition format (version 0.0.4). */
  render(): string {
    const lines: string[] = [];
    for (const [name, m] of this.#metrics) {
      lines.push(
        `# HELP ${name} ${m.help}`,
        `# TYPE ${name} ${m.type === 'labeled-counter' ? 'counter' : m.type}`,
      );
      if (m.type === 'labeled-counter') {
        for (const [value, count] of m.values)
          lines.push(`${name}{${m.label}="${escapeLabel(value)}"} ${count}`);
      } else if (m.type === 'histogram') {
        m.buckets.forEach((bound, i) => {
          lines.push(`${name}_bucket{le="${bound}"} ${m.counts[i] ?? 0}`);
        });
        lines.push(
          `${name}_bucket{le="+Inf"} ${m.count}`,
          `${name}_sum ${m.sum}`,
          `${name}_count ${m.count}`,
        );
      } else {
        const value = m.type === 'gauge' && m.read ? m.read() : m.value;
        lines.push(`${name} ${value}`);
      }
    }
    return `${lines.join('\n')}\n`;
  }

  // biome-ignore lint/suspicious/noExplicitAny: the registry holds one union; callers get typed views.
  #get(name: string, create: () => Metric): any {
    const existing = this.#metrics.get(name);
    if (existing) return existing;
    const created = create();
    this.#metrics.set(name, created);
    return created;
  }
}

/** A label value as the text format wants it: backslash, quote and newline escaped. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
