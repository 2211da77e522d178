import { type AppendItem, type DocStore, type StoredEntry, SyncError } from '@scopesync/core';
import { Dexie } from 'dexie';
import {
  type EntryRow,
  type HeadRow,
  type IndexedDbOptions,
  ScopesyncDatabase,
} from './indexed-db-database.ts';

/**
 * A {@link DocStore} in IndexedDB: the browser client's document logs, written through Dexie,
 * read in shared read transactions ({@link ScopesyncDatabase.reads}). Every write resolves after
 * its IndexedDB transaction has committed with strict durability.
 */
export class IndexedDbDocStore implements DocStore {
  readonly #db: ScopesyncDatabase;
  #closed = false;

  /** Opens the store on its own database, or on a shared {@link ScopesyncDatabase}. */
  constructor(options: IndexedDbOptions | ScopesyncDatabase = {}) {
    this.#db = (options instanceof ScopesyncDatabase ? options : new ScopesyncDatabase(options)).acquire();
  }

  async append(doc: string, data: Uint8Array): Promise<number> {
    const [seq] = await this.appendBatch([{ doc, data }]);
    return seq as number;
  }

  async appendBatch(items: readonly AppendItem[]): Promise<number[]> {
    this.#open();
    const db = this.#db;
    // Copy outside the transaction: structured clone of a view would store its whole buffer.
    const copies = items.map(({ doc, data }) => ({ doc, data: data.slice() }));
    return db.dexie.transaction('rw', db.entries, db.heads, async () => {
      const heads = new Map<string, number>();
      const seqs: number[] = [];
      for (const { doc, data } of copies) {
        let head = heads.get(doc);
        if (head === undefined) head = (await db.heads.get(doc))?.seq ?? 0;
        const seq = head + 1;
        heads.set(doc, seq);
        await db.entries.add({ doc, seq, data });
        seqs.push(seq);
      }
      await db.heads.bulkPut([...heads].map(([doc, seq]) => ({ doc, seq })));
      return seqs;
    });
  }

  async load(doc: string, sinceSeq = 0, limit?: number): Promise<StoredEntry[]> {
    this.#open();
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) {
      throw new SyncError('BadRequest', `limit must be a non-negative integer, got ${String(limit)}`);
    }
    if (limit === 0) return [];
    // The [doc+seq] key walks in seq order, so the first `limit` rows are the lowest seqs.
    const range = this.#db.keyRange.bound([doc, sinceSeq], [doc, Number.POSITIVE_INFINITY], true, true);
    const rows = await this.#db.reads.getAll<EntryRow>('entries', range, limit);
    return rows.map((row) => ({ seq: row.seq, data: row.data }));
  }

  async head(doc: string): Promise<number> {
    this.#open();
    return (await this.#db.reads.get<HeadRow>('heads', doc))?.seq ?? 0;
  }

  async compact(doc: string, throughSeq: number, snapshot: Uint8Array): Promise<void> {
    this.#open();
    const db = this.#db;
    const data = snapshot.slice();
    // One transaction: a crash leaves either the old entries or the snapshot.
    await db.dexie.transaction('rw', db.entries, async () => {
      const existing = await db.entries.get([doc, throughSeq]);
      if (!existing) throw new SyncError('Conflict', `no entry ${throughSeq} to compact through in ${doc}`);
      await db.entries
        .where('[doc+seq]')
        .between([doc, Dexie.minKey], [doc, throughSeq], true, true)
        .delete();
      await db.entries.put({ doc, seq: throughSeq, data });
    });
  }

  async remove(doc: string): Promise<void> {
    this.#open();
    await this.#db.entries
      .where('[doc+seq]')
      .between([doc, Dexie.minKey], [doc, Dexie.maxKey], true, true)
      .delete();
  }

  async docs(prefix = ''): Promise<string[]> {
    this.#open();
    const keys = await (prefix === ''
      ? this.#db.entries.orderBy('doc').uniqueKeys()
      : this.#db.entries.where('doc').startsWith(prefix).uniqueKeys());
    return (keys as string[]).slice().sort();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.release();
  }

  #open(): void {
    if (this.#closed) throw new SyncError('Unavailable', 'the store is closed');
  }
}
