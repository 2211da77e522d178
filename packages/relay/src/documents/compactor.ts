import { type DocStore, isSyncError } from '@scopesync/core';
import type { Counter, Metrics } from '../metrics.ts';
import type { SyncLog } from '../sync/sync-log.ts';
import type { DocEntry } from './doc-registry.ts';
import type { MergedLog } from './merge-thread.ts';

/** Options of a {@link Compactor}. */
export interface CompactorOptions {
  readonly store: DocStore;
  readonly metrics: Metrics;
  readonly log: SyncLog;
  /** Compact again once the log has grown by this many entries since the last attempt. */
  readonly compactAfter: number;
  /** Called when a compaction of the entry has settled (it may be evictable again). */
  readonly settled?: ((entry: DocEntry) => void) | undefined;
  /** Merges a log's entries into one update, off the loop (a {@link MergeThread}'s `merge`). */
  readonly merge: (updates: readonly Uint8Array[]) => Promise<MergedLog>;
}

/** A log grows by at least this many bytes between two compactions. */
const MIN_GROWTH_BYTES = 16 * 1024;

/**
 * The log size at which a log of `logBytes` (just compacted or loaded) is due again: a quarter
 * bigger, and at least 16 KiB. Entries that each hold many keystrokes (a commit stores a
 * socket's updates as one merged row) reach `compactAfter` only after a long tail; growth in
 * proportion keeps what a load applies near the document's size, and compactions — each one
 * rebuilds the whole document — few as it grows.
 */
export function compactAtBytes(logBytes: number): number {
  return logBytes + Math.max(MIN_GROWTH_BYTES, Math.ceil(logBytes / 4));
}

/**
 * Keeps plaintext document logs short: once a log has grown by `compactAfter` entries, or by
 * a quarter of its bytes (see {@link compactAtBytes}), it is replaced by one merged update.
 * Never loses an append that races it: only the entries committed when the log was read are
 * replaced.
 */
export class Compactor {
  readonly #store: DocStore;
  readonly #log: SyncLog;
  readonly #compactAfter: number;
  readonly #settled: ((entry: DocEntry) => void) | undefined;
  readonly #merge: (updates: readonly Uint8Array[]) => Promise<MergedLog>;
  readonly #running = new Set<Promise<void>>();
  readonly #done: Counter;
  #closed = false;

  constructor(options: CompactorOptions) {
    this.#store = options.store;
    this.#log = options.log;
    this.#compactAfter = options.compactAfter;
    this.#settled = options.settled;
    this.#merge = options.merge;
    this.#done = options.metrics.counter('scopesync_compactions_total', 'Plaintext document logs compacted.');
  }

  /** Starts compacting the entry's log if it is due and none is running. */
  consider(entry: DocEntry): void {
    if (this.#closed || entry.mode !== 'plaintext' || entry.removed || entry.compaction) return;
    if (entry.logEntries < entry.compactAt && entry.logBytes < entry.compactAtBytes) return;
    const run = this.#compact(entry).finally(() => {
      entry.compaction = null;
      entry.compactAt = entry.logEntries + this.#compactAfter;
      entry.compactAtBytes = compactAtBytes(entry.logBytes);
      this.#running.delete(run);
      this.#settled?.(entry);
    });
    entry.compaction = run;
    this.#running.add(run);
  }

  /** Starts no more compactions and waits for the running ones. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#running]);
  }

  /**
   * Replaces the committed log by one update holding the same content, merged off the loop.
   * Anything appended after the log was read gets a higher seq and stays, so no update is lost.
   */
  async #compact(entry: DocEntry): Promise<void> {
    try {
      const stored = await this.#store.load(entry.name);
      const last = stored.at(-1);
      if (!last || stored.length < 2) return;
      let replaced = 0;
      for (const e of stored) replaced += e.data.byteLength;
      const snapshot = (await this.#merge(stored.map((e) => e.data))).update;
      await this.#store.compact(entry.name, last.seq, snapshot);
      entry.logEntries = Math.max(1, entry.logEntries - (stored.length - 1));
      entry.logBytes = Math.max(snapshot.byteLength, entry.logBytes - replaced + snapshot.byteLength);
      this.#done.inc();
    } catch (error) {
      // Conflict: the document was removed meanwhile, nothing to do. Anything else: the log is
      // intact (compaction is atomic), so report and carry on; the next commit retries.
      if (!isSyncError(error, 'Conflict') && !this.#closed) {
        this.#log('warn', 'compacting a document failed; its log is unchanged', { doc: entry.name, error });
      }
    }
  }
}
