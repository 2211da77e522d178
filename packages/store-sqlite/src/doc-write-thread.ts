import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { SyncError } from '@scopesync/core';
import { DOC_WRITER_SOURCE } from './doc-writer-source.ts';
import type { SqliteSynchronous } from './open-sqlite-file.ts';
import { toSyncError } from './sqlite-errors.ts';

/** One write of the document tables, as the writer thread takes it. */
export type DocWriteRequest =
  | { readonly op: 'append'; readonly items: readonly { doc: string; data: Uint8Array }[] }
  | {
      readonly op: 'compact';
      readonly doc: string;
      readonly throughSeq: number;
      readonly snapshot: Uint8Array;
    }
  | { readonly op: 'remove'; readonly doc: string }
  | { readonly op: 'checkpoint' };

/** Options of a {@link DocWriteThread}. */
export interface DocWriteThreadOptions {
  /** The SQLite file, already created with its tables by the store's own connection. */
  readonly path: string;
  readonly synchronous: SqliteSynchronous;
  readonly busyTimeoutMs: number;
  readonly journalSizeLimit: number;
  /** The thread's page cache in KiB, as the store's own connection has it; undefined: the driver's default. */
  readonly cacheKiB?: number | undefined;
  /** The thread stops after this long without a request (and starts again on the next). */
  readonly idleMs: number;
}

interface Answer {
  readonly id: number;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: { message: string; code?: string; kind?: string; name?: string };
}

interface Waiter {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

const driverPath = createRequire(import.meta.url).resolve('better-sqlite3');

/** One running writer thread and the requests it has not answered yet. */
class Writer {
  readonly worker: Worker;
  readonly waiting = new Map<number, Waiter>();
  readonly exited: Promise<void>;
  /** Set once asked to close: stays referenced until it exited, so a shutdown awaiting it is not cut short. */
  closing = false;

  constructor(options: DocWriteThreadOptions) {
    this.worker = new Worker(DOC_WRITER_SOURCE, {
      eval: true,
      // Not the parent's flags: `--input-type=module` would run the source as ESM (no require),
      // and loaders such as tsx have nothing to do here.
      execArgv: [],
      workerData: {
        driver: driverPath,
        path: options.path,
        synchronous: options.synchronous,
        busyTimeoutMs: options.busyTimeoutMs,
        journalSizeLimit: options.journalSizeLimit,
        cacheKiB: options.cacheKiB,
      },
      // The thread only runs SQLite: keep its V8 heap small.
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 4 },
    });
    this.worker.unref();
    this.worker.on('message', (answer: Answer) => this.#settle(answer));
    // A thread that failed to open the file or died mid-write: nothing it did not answer was
    // acknowledged, and SQLite rolls an unfinished transaction back.
    this.worker.on('error', (error) => this.#failAll(error));
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', () => {
        this.#failAll(new Error('the writer thread exited'));
        resolve();
      }),
    );
  }

  post(id: number, message: object, waiter: Waiter): void {
    if (this.waiting.size === 0) this.worker.ref();
    this.waiting.set(id, waiter);
    this.worker.postMessage({ id, ...message });
  }

  #settle(answer: Answer): void {
    const waiter = this.waiting.get(answer.id);
    if (!waiter) return;
    this.waiting.delete(answer.id);
    // Unreferenced while idle: an open store must not keep a process alive. Not while closing:
    // a process whose only work left is waiting for the thread to exit would otherwise end with
    // its shutdown unfinished (Node's exit code 13, an unsettled top-level await).
    if (this.waiting.size === 0 && !this.closing) this.worker.unref();
    if (answer.ok) waiter.resolve(answer.value);
    else waiter.reject(rebuild(answer.error));
  }

  #failAll(cause: unknown): void {
    for (const waiter of this.waiting.values()) {
      waiter.reject(new SyncError('Unavailable', 'the document store’s writer thread stopped', { cause }));
    }
    this.waiting.clear();
  }
}

/**
 * Runs the writes of a `SqliteDocStore` (`writeOnThread`), or only its checkpoints
 * (`checkpointOnThread`), on a thread with a connection of its own, so the caller's event loop
 * does not wait on the disk for them: the log append, the fsync of a commit, SQLite's checkpoint
 * (which flushes the log and the database file every thousand pages). A request resolves once
 * its transaction committed there, durably at `synchronous = FULL`.
 * Requests run one after another in the order given. The thread starts with the first request
 * and stops after `idleMs` without one, so an idle store holds no thread.
 */
export class DocWriteThread {
  readonly #options: DocWriteThreadOptions;
  #writer: Writer | null = null;
  #stopping = new Set<Promise<void>>();
  #idle: NodeJS.Timeout | null = null;
  #nextId = 1;
  #closed = false;

  constructor(options: DocWriteThreadOptions) {
    this.#options = options;
  }

  /** Runs one write on the thread; resolves with its result once committed. */
  run<T>(request: DocWriteRequest, context: string): Promise<T> {
    if (this.#closed) return Promise.reject(new SyncError('Unavailable', 'the store is closed'));
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#idle = null;
    this.#writer ??= new Writer(this.#options);
    const writer = this.#writer;
    const answered = new Promise<unknown>((resolve, reject) => {
      writer.post(this.#nextId++, request, { resolve, reject });
    });
    const done = (): void => this.#maybeIdle(writer);
    answered.then(done, done);
    return answered.then(
      (value) => value as T,
      (error: unknown) => {
        throw toSyncError(error, context);
      },
    );
  }

  /** Waits for every request given so far, then stops the thread. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#idle = null;
    const writer = this.#writer;
    this.#writer = null;
    if (writer) await this.#stop(writer);
    await Promise.allSettled([...this.#stopping]);
  }

  #maybeIdle(writer: Writer): void {
    if (this.#writer !== writer || writer.waiting.size > 0 || this.#closed) return;
    this.#idle ??= setTimeout(() => {
      this.#idle = null;
      if (this.#writer !== writer || writer.waiting.size > 0) return;
      this.#writer = null;
      const stopping = this.#stop(writer).finally(() => this.#stopping.delete(stopping));
      this.#stopping.add(stopping);
    }, this.#options.idleMs);
    this.#idle.unref();
  }

  /** Asks the thread to close its connection after the requests queued before, and waits for it to exit. */
  async #stop(writer: Writer): Promise<void> {
    writer.closing = true;
    const closed = new Promise<unknown>((resolve, reject) => {
      writer.post(this.#nextId++, { op: 'close' }, { resolve, reject });
    });
    await closed.catch(() => undefined);
    await writer.exited;
  }
}

/** The thread's error as the caller would have seen it on its own connection. */
function rebuild(error: Answer['error']): Error {
  const message = error?.message ?? 'the writer thread failed';
  if (error?.kind === 'Conflict') return new SyncError('Conflict', message);
  const rebuilt = error?.name === 'TypeError' ? new TypeError(message) : new Error(message);
  if (error?.code !== undefined) Object.assign(rebuilt, { code: error.code });
  return rebuilt;
}
