/**
 * Collects the garbage a workload's set-up left behind, before a cold measurement starts its
 * clock (needs `--expose-gc`; a no-op without it).
 *
 * Twice, because one forced collection leaves work behind: V8 sweeps the pages it freed after
 * `gc()` returns, on helper threads and, when those have not finished (two cores shared with
 * the servers), on the main thread at its next allocations. After filling 1,000 documents that
 * landed inside the timed first read of workload 5: the same child read its first document in
 * 90–240 ms after one `gc()`, 5–9 ms after two, 3.3–3.7 ms with none (2026-12-04, load 4–8).
 * The second collection waits for the first one's sweeping, then has only the survivors to sweep.
 */
export function settleHeap(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
}
