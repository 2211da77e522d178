import { closeSync, fdatasync, openSync } from 'node:fs';

/**
 * Makes a WAL database's commits durable off the event loop. With `synchronous = FULL`, SQLite
 * fsyncs the write-ahead log inside every commit, which blocks the thread for the whole disk
 * flush (about a millisecond per commit here, a third of a busy relay's time). Run at `NORMAL`,
 * a commit only writes the log, and this flushes the same file on libuv's thread pool before the
 * commit is reported: the same promise as FULL in WAL mode (a resolved write survives power
 * loss), while the loop keeps serving sockets. Commits that land while a flush runs share the
 * next one (group commit).
 */
export class WalSync {
  readonly #path: string;
  #fd: number | null = null;
  /** The flush under way, and the one queued behind it for writes it may not cover. */
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;
  #closed = false;

  /** `databasePath`: the SQLite file; its log is `<databasePath>-wal`. */
  constructor(databasePath: string) {
    this.#path = `${databasePath}-wal`;
  }

  /** Resolves once everything written to the log before this call is on disk. */
  sync(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the write-ahead log is closed'));
    if (this.#running === null) return this.#start();
    // The flush under way may have started before this caller's write reached the log.
    this.#next ??= this.#running.then(
      () => this.#startNext(),
      () => this.#startNext(),
    );
    return this.#next;
  }

  /** Waits for the flushes already asked for, then releases the log's descriptor. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([this.#running, this.#next]);
    await Promise.allSettled([this.#running]);
    this.#release();
  }

  #startNext(): Promise<void> {
    this.#next = null;
    return this.#start();
  }

  #start(): Promise<void> {
    const run = this.#flush().finally(() => {
      if (this.#running === run) this.#running = null;
    });
    this.#running = run;
    return run;
  }

  async #flush(): Promise<void> {
    // One descriptor for the store's life: SQLite deletes the log only when the last connection
    // to the database closes, and the store's own connection stays open until close(). A log
    // cut back to `journal_size_limit` after a checkpoint keeps its inode.
    await datasync(this.#descriptor());
  }

  #descriptor(): number {
    this.#fd ??= openSync(this.#path, 'r');
    return this.#fd;
  }

  #release(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}

function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
}
