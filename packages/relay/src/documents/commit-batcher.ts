import { setImmediate } from 'node:timers';
import { type DocStore, isSyncError, type SubscribeMode, SyncError } from '@scopesync/core';
import type { Counter, Histogram, Metrics } from '../metrics.ts';
import type { SyncLog } from '../sync/sync-log.ts';
import type { DocEntry } from './doc-registry.ts';

/** Options of a {@link CommitBatcher}. */
export interface CommitBatcherOptions {
  readonly store: DocStore;
  readonly metrics: Metrics;
  readonly log: SyncLog;
  /** Called after each successful batch with the documents it wrote to (e.g. to consider compacting them). */
  readonly afterCommit?: ((entries: ReadonlySet<DocEntry>) => void) | undefined;
  /** Called after a failed batch with the plaintext documents it held (now stale: memory has what the store lacks). */
  readonly refused?: ((entries: ReadonlySet<DocEntry>) => void) | undefined;
  /**
   * How long a batch may wait for the store before its writers are refused (Unavailable), in ms.
   * Default 20,000. A backstop for a store that never answers: a store with a bound of its own
   * (the PostgreSQL one's, 10 s) should answer first and say whether the write can still land.
   */
  readonly commitTimeoutMs?: number | undefined;
}

const DEFAULT_COMMIT_TIMEOUT_MS = 20_000;

interface QueuedWrite {
  readonly entry: DocEntry;
  readonly mode: SubscribeMode;
  readonly data: Uint8Array;
  readonly onCommit: ((seq: number) => void) | undefined;
  readonly resolve: (value: { seq: number }) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The relay's write queue: every write queued in one loop turn, across documents, is committed
 * with one `appendBatch`, and only then is each writer answered — so no writer drops an
 * update the store may still lose. A failed batch refuses all its writers and marks their
 * plaintext documents stale, since memory then holds updates the store does not.
 */
export class CommitBatcher {
  readonly #store: DocStore;
  readonly #log: SyncLog;
  readonly #afterCommit: ((entries: ReadonlySet<DocEntry>) => void) | undefined;
  readonly #refused: ((entries: ReadonlySet<DocEntry>) => void) | undefined;
  readonly #commitTimeoutMs: number;
  #queue: QueuedWrite[] = [];
  #scheduled = false;
  #draining: Promise<void> | null = null;
  readonly #commits: Counter;
  readonly #commitFailures: Counter;
  readonly #committedWrites: Counter;
  readonly #commitSeconds: Histogram;
  readonly #batchSize: Histogram;

  constructor(options: CommitBatcherOptions) {
    this.#store = options.store;
    this.#log = options.log;
    this.#afterCommit = options.afterCommit;
    this.#refused = options.refused;
    this.#commitTimeoutMs = options.commitTimeoutMs ?? DEFAULT_COMMIT_TIMEOUT_MS;
    const m = options.metrics;
    this.#commits = m.counter(
      'scopesync_store_commits_total',
      'Batches of document writes committed to the store.',
    );
    this.#commitFailures = m.counter(
      'scopesync_store_commit_failures_total',
      'Batches of document writes the store failed to commit.',
    );
    this.#committedWrites = m.counter(
      'scopesync_store_writes_total',
      'Document updates and envelopes committed.',
    );
    this.#commitSeconds = m.histogram(
      'scopesync_store_commit_seconds',
      'Time to commit one batch of writes.',
    );
    this.#batchSize = m.histogram(
      'scopesync_store_commit_batch_size',
      'Document writes in one committed batch.',
      [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    );
  }

  /**
   * Queues `data` for the next commit; resolves with its seq once committed, rejects if the
   * store refused the batch. A plaintext write must already be applied to `entry.doc`: it
   * counts as in flight (a reload replays it) until committed. `onCommit` runs synchronously
   * at the commit, in seq order, before the next batch.
   */
  enqueue(
    entry: DocEntry,
    mode: SubscribeMode,
    data: Uint8Array,
    onCommit?: (seq: number) => void,
  ): Promise<{ seq: number }> {
    const committed = new Promise<{ seq: number }>((resolve, reject) => {
      const write: QueuedWrite = { entry, mode, data, onCommit, resolve, reject };
      if (mode === 'plaintext') entry.inflight.add(write);
      this.#queue.push(write);
    });
    entry.tail = committed.then(
      () => undefined,
      () => undefined,
    );
    this.#schedule();
    return committed;
  }

  /** Answers a write that changed nothing once the document's earlier writes have committed. */
  async noop(entry: DocEntry): Promise<{ seq: number }> {
    const epoch = entry.epoch;
    await entry.tail;
    if (entry.epoch !== epoch) {
      // What made this write a no-op may have been in a batch that just failed.
      throw new SyncError('Unavailable', 'an earlier write of this document failed to commit; send it again');
    }
    return { seq: entry.headSeq };
  }

  /** Resolves once every write queued so far has been committed or refused. */
  async flush(): Promise<void> {
    while (this.#queue.length > 0 || this.#draining !== null || this.#scheduled) {
      if (this.#draining) await this.#draining;
      else if (this.#queue.length > 0) await this.#drain();
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#draining) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: it runs after the I/O callbacks of this loop turn, so the
    // frames of every socket that arrived together share one transaction.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#drain();
    });
  }

  #drain(): Promise<void> {
    if (this.#draining) return this.#draining;
    if (this.#queue.length === 0) return Promise.resolve();
    const run = async (): Promise<void> => {
      try {
        while (this.#queue.length > 0) {
          const batch = this.#queue;
          this.#queue = [];
          await this.#commit(batch);
        }
      } finally {
        this.#draining = null;
      }
    };
    // The first commit awaits the store before `finally` can run, so this assignment comes first.
    this.#draining = run();
    return this.#draining;
  }

  async #commit(batch: QueuedWrite[]): Promise<void> {
    const started = performance.now();
    let seqs: number[];
    try {
      seqs = await this.#withDeadline(
        this.#store.appendBatch(batch.map((w) => ({ doc: w.entry.name, data: w.data }))),
        batch.length,
      );
      if (seqs.length !== batch.length)
        throw new SyncError('Internal', 'the store returned a wrong number of seqs');
    } catch (error) {
      this.#refuse(batch, error);
      return;
    }
    this.#commits.inc();
    this.#committedWrites.inc(batch.length);
    this.#batchSize.observe(batch.length);
    this.#commitSeconds.observe((performance.now() - started) / 1000);
    const touched = new Set<DocEntry>();
    batch.forEach((w, i) => {
      const seq = seqs[i] as number;
      const entry = w.entry;
      entry.headSeq = Math.max(entry.headSeq, seq);
      entry.logEntries += 1;
      if (w.mode === 'plaintext') {
        entry.inflight.delete(w);
        entry.catchup?.push(w.data);
      }
      touched.add(entry);
      w.resolve({ seq });
      if (w.onCommit) this.#call(entry, () => w.onCommit?.(seq));
    });
    this.#afterCommit?.(touched);
  }

  /**
   * `commit`, or Unavailable once the deadline passes: a store that never answers (a stopped
   * database backend, a network black hole) must not hold every later writer of this relay
   * too. The refused writers resend; a commit that lands after all is logged, and the reload of
   * the refused documents reads it.
   */
  #withDeadline(commit: Promise<number[]>, writes: number): Promise<number[]> {
    // One promise and a timer per commit, not a deadline promise and a `Promise.race` on top:
    // this runs for every edit, and its garbage is collected in pauses that edits wait behind.
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new SyncError('Unavailable', `the store did not commit within ${this.#commitTimeoutMs} ms`));
        commit.then(
          () => this.#log('warn', 'a batch refused at its commit deadline was committed later', { writes }),
          () => undefined,
        );
      }, this.#commitTimeoutMs);
      commit.then(
        (seqs) => {
          clearTimeout(timer);
          resolve(seqs);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  #refuse(batch: readonly QueuedWrite[], error: unknown): void {
    this.#commitFailures.inc();
    const docs = [...new Set(batch.map((w) => w.entry.name))];
    this.#log('error', 'the store failed to commit a batch of writes; its writers were refused', {
      docs: docs.slice(0, 20),
      writes: batch.length,
      error,
    });
    // Always Unavailable, whatever the store said (a lost connection, a unique-key clash of two
    // relays, Internal): the writes were valid, so their writers must send them again, not drop
    // them — a plaintext one may already be on other readers' screens (chaos issue #16).
    const detail = isSyncError(error) ? `: ${error.message}` : '';
    const refusal = new SyncError('Unavailable', `the relay could not store the update${detail}`, {
      cause: error,
    });
    const stale = new Set<DocEntry>();
    for (const w of batch) {
      if (w.mode === 'plaintext') {
        w.entry.inflight.delete(w);
        // The in-memory doc holds this update but the store does not: reload before next use.
        w.entry.stale = true;
        stale.add(w.entry);
      }
      w.entry.epoch += 1;
      w.reject(refusal);
    }
    if (stale.size > 0) this.#refused?.(stale);
  }

  /** Runs a commit callback; one that throws is reported, never allowed to break the commit loop. */
  #call(entry: DocEntry, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#log('error', 'a commit callback threw', { doc: entry.name, error });
    }
  }
}
