import type { AppendItem, DocStore, StoredEntry } from './doc-store.ts';
import { SyncError } from './errors.ts';

/** A {@link DocStore} in memory: the reference implementation, for tests and ephemeral relays. */
export class MemoryDocStore implements DocStore {
  readonly #logs = new Map<string, StoredEntry[]>();
  readonly #heads = new Map<string, number>();
  #closed = false;

  async append(doc: string, data: Uint8Array): Promise<number> {
    const [seq] = await this.appendBatch([{ doc, data }]);
    return seq as number;
  }

  async appendBatch(items: readonly AppendItem[]): Promise<number[]> {
    this.#open();
    // Validate and copy everything first: a batch is stored whole or not at all.
    const copies = items.map((item) => {
      if (typeof item?.doc !== 'string' || !(item.data instanceof Uint8Array)) {
        throw new SyncError('BadRequest', 'each batch item needs a doc name and Uint8Array data');
      }
      // Copy: the caller may reuse its buffer.
      return { doc: item.doc, data: item.data.slice() };
    });
    return copies.map(({ doc, data }) => {
      const seq = (this.#heads.get(doc) ?? 0) + 1;
      this.#heads.set(doc, seq);
      const log = this.#logs.get(doc) ?? [];
      log.push({ seq, data });
      this.#logs.set(doc, log);
      return seq;
    });
  }

  async load(doc: string, sinceSeq = 0, limit?: number): Promise<StoredEntry[]> {
    this.#open();
    checkLimit(limit);
    return (this.#logs.get(doc) ?? [])
      .filter((e) => e.seq > sinceSeq)
      .slice(0, limit)
      .map((e) => ({ seq: e.seq, data: e.data.slice() }));
  }

  async head(doc: string): Promise<number> {
    this.#open();
    return this.#heads.get(doc) ?? 0;
  }

  async heads(docs: readonly string[]): Promise<Map<string, number>> {
    this.#open();
    return new Map(docs.map((doc) => [doc, this.#heads.get(doc) ?? 0]));
  }

  async compact(doc: string, throughSeq: number, snapshot: Uint8Array): Promise<void> {
    this.#open();
    const log = this.#logs.get(doc) ?? [];
    if (!log.some((e) => e.seq === throughSeq)) {
      throw new SyncError('Conflict', `no entry ${throughSeq} to compact through in ${doc}`);
    }
    const rest = log.filter((e) => e.seq > throughSeq);
    this.#logs.set(doc, [{ seq: throughSeq, data: snapshot.slice() }, ...rest]);
  }

  async remove(doc: string): Promise<void> {
    this.#open();
    this.#logs.delete(doc);
  }

  async docs(prefix = ''): Promise<string[]> {
    this.#open();
    return [...this.#logs.keys()].filter((d) => d.startsWith(prefix)).sort();
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #open(): void {
    if (this.#closed) throw new SyncError('Unavailable', 'the store is closed');
  }
}

function checkLimit(limit: number | undefined): void {
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) {
    throw new SyncError('BadRequest', `limit must be a non-negative integer, got ${String(limit)}`);
  }
}
