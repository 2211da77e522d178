import { setImmediate } from 'node:timers';
import { type DocStore, isSyncError, type SubscribeMode, SyncError } from '@scopesync/core';
import * as Y from 'yjs';
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
/**
 * Bounds of one stored row made of several writes. Y.mergeUpdates costs ~2 µs per keystroke
 * update up to about a hundred of them and grows faster than linearly past that (8 µs at 400).
 */
const MAX_JOINED_WRITES = 64;
const MAX_JOINED_BYTES = 64 * 1024;

/** Called once a write's row committed, with the row's seq and the bytes stored in it. */
export type OnCommit = (seq: number, stored: Uint8Array) => void;

interface QueuedWrite {
  readonly entry: DocEntry;
  readonly mode: SubscribeMode;
  readonly data: Uint8Array;
  readonly onCommit: OnCommit | undefined;
  readonly joinAs: number | undefined;
  readonly resolve: (value: { seq: number }) => void;
  readonly reject: (error: unknown) => void;
}

/** One entry of the store's log: one write, or several plaintext writes of one writer merged. */
interface Row {
  readonly entry: DocEntry;
  readonly writes: QueuedWrite[];
  data: Uint8Array;
  bytes: number;
}

/**
 * The relay's write queue: every write queued in one loop turn, across documents, is committed
 * with one `appendBatch`, and only then is each writer answered — so no writer drops an
 * update the store may still lose. Consecutive plaintext writes of one document by one writer
 * (`joinAs`) in a batch are stored as one row, their updates merged (Yjs: the same content), and
 * share its seq. A failed batch refuses all its writers and marks their plaintext documents
 * stale, since memory then holds updates the store does not.
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
   * at the commit, in seq order, before the next batch, once per stored row: a plaintext write
   * with a `joinAs` (its writer) may share a row with the same writer's writes of the document
   * queued right before it; then only the row's last write's `onCommit` runs, with the merged
   * update, and every write of the row resolves with the row's seq.
   */
  enqueue(
    entry: DocEntry,
    mode: SubscribeMode,
    data: Uint8Array,
    onCommit?: OnCommit,
    joinAs?: number,
  ): Promise<{ seq: number }> {
    const committed = new Promise<{ seq: number }>((resolve, reject) => {
      const joins = mode === 'plaintext' ? joinAs : undefined;
      const write: QueuedWrite = { entry, mode, data, onCommit, joinAs: joins, resolve, reject };
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
    const rows = this.#rows(batch);
    let seqs: number[];
    try {
      seqs = await this.#withDeadline(
        this.#store.appendBatch(rows.map((r) => ({ doc: r.entry.name, data: r.data }))),
        batch.length,
      );
      if (seqs.length !== rows.length)
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
    rows.forEach((row, i) => {
      const seq = seqs[i] as number;
      const entry = row.entry;
      entry.headSeq = Math.max(entry.headSeq, seq);
      entry.logEntries += 1;
      entry.logBytes += row.data.byteLength;
      touched.add(entry);
      for (const w of row.writes) {
        if (w.mode === 'plaintext') entry.inflight.delete(w);
        w.resolve({ seq });
      }
      if (row.writes[0]?.mode === 'plaintext') entry.catchup?.push(row.data);
      const last = row.writes[row.writes.length - 1] as QueuedWrite;
      if (last.onCommit) this.#call(entry, () => last.onCommit?.(seq, row.data));
    });
    this.#afterCommit?.(touched);
  }

  /**
   * The batch as stored rows, in order per document: each write alone, but a plaintext write
   * joins the row of the document's previous write in the batch when both have the same
   * `joinAs` (within the bounds). Writes of other documents in between do not matter (seqs are
   * per document); another writer's write of the same document does.
   */
  #rows(batch: readonly QueuedWrite[]): Row[] {
    const rows: Row[] = [];
    const lastRow = new Map<DocEntry, Row>();
    for (const w of batch) {
      const last = lastRow.get(w.entry);
      if (
        last !== undefined &&
        w.joinAs !== undefined &&
        last.writes[0]?.joinAs === w.joinAs &&
        last.writes.length < MAX_JOINED_WRITES &&
        last.bytes + w.data.byteLength <= MAX_JOINED_BYTES
      ) {
        last.writes.push(w);
        last.bytes += w.data.byteLength;
        continue;
      }
      const row: Row = { entry: w.entry, writes: [w], data: w.data, bytes: w.data.byteLength };
      rows.push(row);
      lastRow.set(w.entry, row);
    }
    if (rows.length === batch.length) return rows;
    const out: Row[] = [];
    for (const row of rows) {
      if (row.writes.length === 1) {
        out.push(row);
        continue;
      }
      try {
        row.data = Y.mergeUpdates(row.writes.map((w) => w.data));
        out.push(row);
      } catch (error) {
        // Each was validated alone; should their merge still fail, they are stored as they came.
        this.#log('warn', 'merging the updates of one writer failed; storing them one by one', {
          doc: row.entry.name,
          error,
        });
        for (const w of row.writes) out.push({ entry: w.entry, writes: [w], data: w.data, bytes: 0 });
      }
    }
    return out;
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
