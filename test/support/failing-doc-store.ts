import { type AppendItem, MemoryDocStore, SyncError } from '@scopesync/core';

/** A document store whose next commit touching one doc fails (a dropped database connection). */
export class FailingOnceDocStore extends MemoryDocStore {
  #armed: string | null = null;
  /** How many commits were made to fail. */
  failures = 0;

  /** Makes the next batch that writes `doc` fail. */
  failNextWriteOf(doc: string): void {
    this.#armed = doc;
  }

  override async appendBatch(items: readonly AppendItem[]): Promise<number[]> {
    if (this.#armed !== null && items.some((item) => item.doc === this.#armed)) {
      this.#armed = null;
      this.failures += 1;
      throw new SyncError('Unavailable', 'the connection to the database was terminated');
    }
    return super.appendBatch(items);
  }
}
