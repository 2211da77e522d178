/** Summary of a set of latency samples in milliseconds. Lost samples count as +Infinity. */
export interface LatencySummary {
  readonly count: number;
  readonly lost: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank percentile of sorted values (q in [0, 1]). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** p50/p99/max of `samples`, with `lost` samples added as +Infinity. */
export function summarize(samples: readonly number[], lost = 0): LatencySummary {
  const sorted = [...samples, ...Array<number>(lost).fill(Number.POSITIVE_INFINITY)].sort((a, b) => a - b);
  return {
    count: sorted.length,
    lost,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

/** The median (mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
