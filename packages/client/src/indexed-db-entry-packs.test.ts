import { MemoryDocStore, type StoredEntry } from '@scopesync/core';
import { seeds, withSeed } from '@scopesync/testing';
import { Dexie } from 'dexie';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { indexedDbClientStore } from './client-store.ts';
import type { EntryRow } from './indexed-db-database.ts';
import { IndexedDbDocStore } from './indexed-db-doc-store.ts';
import { PACK_MAX_BYTES, PACK_MAX_ENTRIES, type PlainRow } from './indexed-db-entry-packs.ts';
import { decodeEntry, EntryTag, encodeEntry } from './local-doc-log.ts';

const plain = (entries: readonly StoredEntry[]) => entries.map((e) => [e.seq, ...e.data]);

/** The raw rows of a database's `entries` store, read with the plain IndexedDB API. */
async function rawRows(indexedDB: IDBFactory, name: string): Promise<EntryRow[]> {
  const db = await settle(indexedDB.open(name));
  const rows = await settle(db.transaction('entries', 'readonly').objectStore('entries').getAll());
  db.close();
  return rows as EntryRow[];
}

describe('packed entry rows', () => {
  for (const seed of seeds(3)) {
    it(`answers every load as the memory store does, before and after a restart [seed ${seed}]`, () =>
      withSeed('packed rows against the memory store', seed, async (random) => {
        const indexedDB = new IDBFactory();
        const open = () => new IndexedDbDocStore({ name: 'model', indexedDB, IDBKeyRange });
        let store = open();
        const model = new MemoryDocStore();
        const docs = ['a', 'b', 'c'];
        // Mostly keystroke-sized entries, some large enough to end a packed row or stand alone.
        const data = () =>
          random.bytes(random.int(0, 9) === 0 ? random.int(1, PACK_MAX_BYTES + 10) : random.int(0, 40));
        for (let step = 0; step < 400; step++) {
          const doc = random.pick(docs);
          const op = random.int(0, 99);
          if (op < 60) {
            const bytes = data();
            expect(await store.append(doc, bytes)).toBe(await model.append(doc, bytes));
          } else if (op < 80) {
            const items = Array.from({ length: random.int(1, 40) }, () => ({
              doc: random.pick(docs),
              data: data(),
            }));
            expect(await store.appendBatch(items)).toEqual(await model.appendBatch(items));
          } else if (op < 90) {
            const log = await model.load(doc);
            if (log.length === 0) continue;
            const through = random.pick(log).seq;
            const snapshot = random.bytes(random.int(1, 60));
            await store.compact(doc, through, snapshot);
            await model.compact(doc, through, snapshot);
          } else if (op < 92) {
            await store.remove(doc);
            await model.remove(doc);
          } else if (op < 96) {
            await store.close();
            store = open();
          } else {
            const head = await model.head(doc);
            const since = random.int(0, head);
            const limit = random.bool() ? undefined : random.int(0, 30);
            expect(plain(await store.load(doc, since, limit))).toEqual(
              plain(await model.load(doc, since, limit)),
            );
          }
        }
        await store.close();
        store = open();
        for (const doc of docs) {
          expect(plain(await store.load(doc))).toEqual(plain(await model.load(doc)));
          expect(await store.head(doc)).toBe(await model.head(doc));
        }
        expect(await store.docs()).toEqual(await model.docs());
        await store.close();
      }));
  }

  it('keeps a document of single keystrokes in a few rows, and its text after a restart', async () => {
    const indexedDB = new IDBFactory();
    const store = new IndexedDbDocStore({ name: 'typing', indexedDB, IDBKeyRange });
    const names = Array.from({ length: 8 }, (_, i) => `doc-${i}`);
    const texts = await Promise.all(
      names.map(async (name) => {
        const doc = new Y.Doc();
        const text = doc.getText('text');
        for (let i = 0; i < 300; i++) {
          const before = Y.encodeStateVector(doc);
          text.insert(i % (text.length + 1), `k${i} `);
          await store.append(name, Y.encodeStateAsUpdate(doc, before));
        }
        return text.toString();
      }),
    );
    await store.close();
    expect((await rawRows(indexedDB, 'typing')).length).toBe(
      names.length * Math.ceil(300 / PACK_MAX_ENTRIES),
    );

    const reopened = new IndexedDbDocStore({ name: 'typing', indexedDB, IDBKeyRange });
    const loaded = await Promise.all(names.map((name) => reopened.load(name)));
    for (const [i, entries] of loaded.entries()) {
      expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 300 }, (_, k) => k + 1));
      const doc = new Y.Doc();
      for (const entry of entries) Y.applyUpdate(doc, entry.data);
      expect(doc.getText('text').toString()).toBe(texts[i]);
    }
    await reopened.close();
  });

  it('loses no entry when two tabs append to the same document at once', async () => {
    const indexedDB = new IDBFactory();
    const tab1 = new IndexedDbDocStore({ name: 'tabs', indexedDB, IDBKeyRange });
    const tab2 = new IndexedDbDocStore({ name: 'tabs', indexedDB, IDBKeyRange });
    const writes = Array.from({ length: 60 }, (_, i) =>
      (i % 2 === 0 ? tab1 : tab2).append('shared', new Uint8Array([i])),
    );
    const seqs = await Promise.all(writes);
    expect(new Set(seqs).size).toBe(60);
    // Each entry is where its append said it was, in both tabs.
    const expected = seqs.map((seq, i) => [seq, i]).sort((x, y) => (x[0] as number) - (y[0] as number));
    expect(plain(await tab1.load('shared'))).toEqual(expected);
    expect(plain(await tab2.load('shared'))).toEqual(expected);
    await Promise.all([tab1.close(), tab2.close()]);
  });
});

describe('databases written before packed rows', () => {
  /** Writes as the client before packed rows did: one row per entry (Dexie, the same schema). */
  async function writePlainRows(indexedDB: IDBFactory, name: string): Promise<Dexie> {
    const old = new Dexie(name, { indexedDB, IDBKeyRange });
    old.version(1).stores({ entries: '[doc+seq], doc', heads: 'doc', kv: '[table+key], table' });
    for (let d = 0; d < 30; d++) {
      const doc = `doc-${d}`;
      const count = d === 0 ? 2 * PACK_MAX_ENTRIES + 5 : d + 1;
      for (let seq = 1; seq <= count; seq++) {
        // doc-1 holds one entry larger than a packed row, as a snapshot is.
        const size = d === 1 && seq === 1 ? PACK_MAX_BYTES + 1 : 3;
        await old.table('entries').add({ doc, seq, data: new Uint8Array(size).fill(seq % 256) });
      }
      await old.table('heads').put({ doc, seq: count + 2 });
      await old.table('kv').put({ table: 'docs', key: doc, value: { name: doc } });
    }
    return old;
  }

  it('are read entry for entry, and their logs go on after the old head', async () => {
    const indexedDB = new IDBFactory();
    const old = await writePlainRows(indexedDB, 'before');
    const expected = await Promise.all(
      Array.from({ length: 30 }, async (_, d) => {
        const rows = await old.table<PlainRow>('entries').where('doc').equals(`doc-${d}`).sortBy('seq');
        return rows.map((r) => [r.seq, ...r.data]);
      }),
    );
    old.close();

    const store = indexedDbClientStore({ name: 'before', indexedDB, IDBKeyRange });
    for (let d = 0; d < 30; d++) {
      expect(plain(await store.docs.load(`doc-${d}`))).toEqual(expected[d]);
      expect(await store.docs.head(`doc-${d}`)).toBe((expected[d]?.length ?? 0) + 2);
      expect(await store.kv.get('docs', `doc-${d}`)).toEqual({ name: `doc-${d}` });
    }
    // Appends go on after the old head (4 entries, head 6), packed with the plain row before them.
    expect(await store.docs.append('doc-3', new Uint8Array([7]))).toBe(7);
    expect(await store.docs.append('doc-3', new Uint8Array([8]))).toBe(8);
    (expected[3] as number[][]).push([7, 7], [8, 8]);
    await Promise.all([store.docs.close(), store.kv.close()]);
    const reopened = indexedDbClientStore({ name: 'before', indexedDB, IDBKeyRange });
    for (let d = 0; d < 30; d++) expect(plain(await reopened.docs.load(`doc-${d}`))).toEqual(expected[d]);
    await Promise.all([reopened.docs.close(), reopened.kv.close()]);
  });

  it('stay open in a tab on the code from before, which fails on a packed row instead of misreading it', async () => {
    const indexedDB = new IDBFactory();
    const old = await writePlainRows(indexedDB, 'open-tab');
    const store = new IndexedDbDocStore({ name: 'open-tab', indexedDB, IDBKeyRange });
    const local = (i: number) => encodeEntry(EntryTag.Local, 0, new Uint8Array([i]));
    // Not blocked by the old tab's open connection, and neither is it.
    await store.appendBatch([1, 2, 3].map((i) => ({ doc: 'new', data: local(i) })));
    await old.table('entries').add({ doc: 'other', seq: 1, data: local(9) });
    expect(plain(await store.load('other'))).toEqual([[1, ...local(9)]]);
    // What the old tab reads of the packed document: a row without `data`, which its log
    // decoder (unchanged since) reports as corrupt, rather than one entry holding all three.
    const rows = await old.table<EntryRow>('entries').where('doc').equals('new').toArray();
    expect(rows).toHaveLength(1);
    expect(() =>
      decodeEntry(rows[0]?.seq ?? 0, (rows[0] as { data?: Uint8Array }).data as Uint8Array),
    ).toThrow(/corrupt/);
    old.close();
    await store.close();
  });
});

function settle<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}
