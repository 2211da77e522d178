import { MemoryDocStore, type StoredEntry } from '@scopesync/core';
import { seeds, withSeed } from '@scopesync/testing';
import { Dexie } from 'dexie';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { indexedDbClientStore } from './client-store.ts';
import { type EntryRow, ScopesyncDatabase } from './indexed-db-database.ts';
import { IndexedDbDocStore } from './indexed-db-doc-store.ts';
import { PACK_MAX_BYTES, PACK_MAX_ENTRIES } from './indexed-db-entry-packs.ts';

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

describe('the upgrade from plain rows (schema version 1)', () => {
  /** Writes as the client before packed rows did: one row per entry, through Dexie's version 1. */
  async function writeVersion1(indexedDB: IDBFactory, name: string): Promise<Dexie> {
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

  it('reads every entry, head and record the old layout held, and packs the rows', async () => {
    const indexedDB = new IDBFactory();
    const old = await writeVersion1(indexedDB, 'v1');
    const expected = await Promise.all(
      Array.from({ length: 30 }, async (_, d) => {
        const rows = await old.table<EntryRow>('entries').where('doc').equals(`doc-${d}`).sortBy('seq');
        return rows.map((r) => [r.seq, ...r.data]);
      }),
    );
    const rowsBefore = (await rawRows(indexedDB, 'v1')).length;
    old.close();

    const store = indexedDbClientStore({ name: 'v1', indexedDB, IDBKeyRange });
    for (let d = 0; d < 30; d++) {
      expect(plain(await store.docs.load(`doc-${d}`))).toEqual(expected[d]);
      expect(await store.docs.head(`doc-${d}`)).toBe((expected[d]?.length ?? 0) + 2);
      expect(await store.kv.get('docs', `doc-${d}`)).toEqual({ name: `doc-${d}` });
    }
    // Appends go on after the old head, and land after the migrated entries.
    expect(await store.docs.append('doc-3', new Uint8Array([7]))).toBe(7);
    expect(plain(await store.docs.load('doc-3', 4))).toEqual([[7, 7]]);
    await Promise.all([store.docs.close(), store.kv.close()]);
    expect(await indexedDB.databases()).toEqual([{ name: 'v1', version: 20 }]);
    expect((await rawRows(indexedDB, 'v1')).length).toBeLessThan(rowsBefore / 5);
  });

  it('is not blocked by a tab still open on the old layout', async () => {
    const indexedDB = new IDBFactory();
    const old = await writeVersion1(indexedDB, 'open-tab');
    // The old tab's connection stays open; Dexie closes it when a newer version asks.
    const database = new ScopesyncDatabase({ name: 'open-tab', indexedDB, IDBKeyRange });
    const store = new IndexedDbDocStore(database);
    expect((await store.load('doc-2')).length).toBe(3);
    expect(old.isOpen()).toBe(false);
    await store.close();
  });
});

function settle<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}
