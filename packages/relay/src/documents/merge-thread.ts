import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { SyncError } from '@scopesync/core';
import { MERGE_THREAD_SOURCE } from './merge-thread-source.ts';

/** A merged log: one update holding the content of every entry that is a Yjs update. */
export interface MergedLog {
  readonly update: Uint8Array;
  /** Entries left out because they do not decode as Yjs updates. */
  readonly skipped: number;
}

/** Options of a {@link MergeThread}. */
export interface MergeThreadOptions {
  /** The thread stops after this long without a merge (and starts again on the next), in ms. Default 30 s. */
  readonly idleMs?: number | undefined;
}

interface Answer {
  readonly id: number;
  readonly ok: boolean;
  readonly update?: Uint8Array;
  readonly skipped?: number;
  readonly message?: string;
}

interface Waiter {
  readonly resolve: (merged: MergedLog) => void;
  readonly reject: (error: unknown) => void;
}

const DEFAULT_IDLE_MS = 30_000;
const yjsPath = createRequire(import.meta.url).resolve('yjs');

/**
 * Merges plaintext document logs on a thread of their own. A merge applies the whole log to a
 * fresh Y.Doc and encodes it: for a document the size of a paper (100,000 characters) that is
 * 12–16 ms of CPU when warm and up to 100 ms cold (bench/results-history.md, "Compaction off the loop"),
 * during which a loop that ran it would serve no socket of any document. Merges run one after
 * another in the order given; the thread starts with the first and stops after `idleMs` without
 * one, so an idle relay holds no thread and no second copy of Yjs.
 */
export class MergeThread {
  readonly #idleMs: number;
  readonly #waiting = new Map<number, Waiter>();
  #worker: Worker | null = null;
  #idle: NodeJS.Timeout | null = null;
  #nextId = 1;
  #closed = false;

  constructor(options: MergeThreadOptions = {}) {
    this.#idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  }

  /** Merges `updates` (a document's log, in seq order) into one update; Unavailable once closed or if the thread died. */
  merge(updates: readonly Uint8Array[]): Promise<MergedLog> {
    if (this.#closed) return Promise.reject(new SyncError('Unavailable', 'the relay is shutting down'));
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#idle = null;
    this.#worker ??= this.#start();
    const worker = this.#worker;
    const id = this.#nextId++;
    return new Promise<MergedLog>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      worker.postMessage({ id, updates });
    });
  }

  /** Stops the thread; merges not answered yet are refused with Unavailable. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#idle = null;
    const worker = this.#worker;
    this.#worker = null;
    this.#failAll(new Error('the relay is shutting down'));
    if (worker) await worker.terminate();
  }

  #start(): Worker {
    const worker = new Worker(MERGE_THREAD_SOURCE, {
      eval: true,
      // Not the parent's flags: `--input-type=module` would run the source as ESM (no require),
      // and loaders such as tsx have nothing to do here.
      execArgv: [],
      workerData: { yjs: yjsPath },
    });
    // A merge in progress never keeps a process alive: its compaction is only an optimisation.
    worker.unref();
    worker.on('message', (answer: Answer) => this.#settle(answer));
    // A thread that died (out of memory on a huge log, say) refuses what it held; the next
    // merge starts another.
    // A thread stopped for being idle held nothing and may exit after the next one started.
    const died = (cause: unknown): void => {
      if (this.#worker !== worker) return;
      this.#worker = null;
      this.#failAll(cause);
    };
    worker.on('error', died);
    worker.on('exit', () => died(new Error('the merge thread exited')));
    return worker;
  }

  #settle(answer: Answer): void {
    const waiter = this.#waiting.get(answer.id);
    if (!waiter) return;
    this.#waiting.delete(answer.id);
    if (answer.ok && answer.update instanceof Uint8Array) {
      waiter.resolve({ update: answer.update, skipped: answer.skipped ?? 0 });
    } else {
      waiter.reject(
        new SyncError('Internal', `merging a document log failed: ${answer.message ?? 'no answer'}`),
      );
    }
    if (this.#waiting.size === 0) this.#maybeIdle();
  }

  #maybeIdle(): void {
    const worker = this.#worker;
    if (worker === null || this.#closed) return;
    this.#idle ??= setTimeout(() => {
      this.#idle = null;
      if (this.#worker !== worker || this.#waiting.size > 0) return;
      this.#worker = null;
      void worker.terminate();
    }, this.#idleMs);
    this.#idle.unref();
  }

  #failAll(cause: unknown): void {
    for (const waiter of this.#waiting.values()) {
      waiter.reject(new SyncError('Unavailable', 'the merge thread stopped', { cause }));
    }
    this.#waiting.clear();
  }
}
