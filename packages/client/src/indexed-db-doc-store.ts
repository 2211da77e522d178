import { type AppendItem, type DocStore, type StoredEntry, SyncError } from '@scopesync/core';
import { Dexie } from 'dexie';
import { type HeadRow, type IndexedDbOptions, ScopesyncDatabase } from './indexed-db-database.ts';
import { canExtend, type EntryRow, packRows, unpack, unpackAll } from './indexed-db-entry-packs.ts';

/**
 * A {@link DocStore} in IndexedDB: the browser client's document logs, written through Dexie,
 * read in shared read transactions ({@link ScopesyncDatabase.reads}). Every write resolves after
 * its IndexedDB transaction has committed with strict durability. Small consecutive entries of
 * a document share one row (see {@link EntryRow}): an append extends the document's last row
 * in the same transaction, so a crash leaves the row as it was or with the new entries.
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
      const added = new Map<string, StoredEntry[]>();
      const seqs: number[] = [];
      for (const { doc, data } of copies) {
        let head = heads.get(doc);
        if (head === undefined) head = (await db.heads.get(doc))?.seq ?? 0;
        const seq = head + 1;
        heads.set(doc, seq);
        const run = added.get(doc);
        if (run) run.push({ seq, data });
        else added.set(doc, [{ seq, data }]);
        seqs.push(seq);
      }
      for (const [doc, entries] of added) {
        // A document's last row is keyed by its head: seqs only grow, and compaction keeps the
        // entries after the seq it compacts through. None there: the log was removed.
        const head = (entries[0] as StoredEntry).seq - 1;
        const last = head > 0 ? await db.entries.get([doc, head]) : undefined;
        let run = entries;
        if (last && canExtend(last, entries[0] as StoredEntry)) {
          await db.entries.delete([doc, head]);
          run = [...unpack(last), ...entries];
        }
        await db.entries.bulkAdd(packRows(doc, run));
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
    // A whole log (a document opened) shares its request with the logs of the documents next
    // to it that are read at the same time (BatchedReads.log).
    if (sinceSeq <= 0 && limit === undefined) return unpackAll(await this.#db.reads.log<EntryRow>(doc));
    // The [doc+seq] key walks in seq order; a row is keyed by its last seq, so every row from
    // `sinceSeq` on holds at least one entry after it, and `limit` rows hold at least `limit`.
    const range = this.#db.keyRange.bound([doc, sinceSeq], [doc, Number.POSITIVE_INFINITY], true, true);
    const rows = await this.#db.reads.getAll<EntryRow>('entries', range, limit);
    const entries = unpackAll(rows).filter((entry) => entry.seq > sinceSeq);
    return limit === undefined ? entries : entries.slice(0, limit);
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
      // The row holding `throughSeq`: the first one keyed at or after it.
      const holder = await db.entries
        .where('[doc+seq]')
        .between([doc, throughSeq], [doc, Dexie.maxKey], true, true)
        .first();
      const held = holder ? unpack(holder) : [];
      if (!held.some((entry) => entry.seq === throughSeq)) {
        throw new SyncError('Conflict', `no entry ${throughSeq} to compact through in ${doc}`);
      }
      await db.entries
        .where('[doc+seq]')
        .between([doc, Dexie.minKey], [doc, throughSeq], true, true)
        .delete();
      // A packed row running past `throughSeq` keeps its later entries (under the same key).
      const later = held.filter((entry) => entry.seq > throughSeq);
      if (later.length > 0) await db.entries.bulkPut(packRows(doc, later));
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
