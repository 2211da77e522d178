import { runDocStoreSuite } from '@scopesync/testing';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import { ScopesyncDatabase } from './indexed-db-database.ts';
import { IndexedDbDocStore } from './indexed-db-doc-store.ts';

runDocStoreSuite('IndexedDbDocStore (fake-indexeddb)', async () => {
  // A fresh factory per test: every test starts from an empty "browser profile".
  const indexedDB = new IDBFactory();
  const open = () => new IndexedDbDocStore({ name: 'suite', indexedDB, IDBKeyRange });
  return { subject: open(), reopen: async () => open() };
});

describe('IndexedDbDocStore', () => {
  it('shares one database with other stores and closes it after the last one', async () => {
    const indexedDB = new IDBFactory();
    const database = new ScopesyncDatabase({ name: 'shared', indexedDB, IDBKeyRange });
    const a = new IndexedDbDocStore(database);
    const b = new IndexedDbDocStore(database);
    await a.append('doc', new Uint8Array([1]));
    await a.close();
    // The database stays open for b.
    expect((await b.load('doc')).map((e) => [...e.data])).toEqual([[1]]);
    await b.close();
    expect(database.dexie.isOpen()).toBe(false);
  });

  it('stores only the bytes of a view, not the whole buffer behind it', async () => {
    const store = new IndexedDbDocStore({ name: 'views', indexedDB: new IDBFactory(), IDBKeyRange });
    const big = new Uint8Array(1000).fill(7);
    await store.append('doc', big.subarray(10, 13));
    const [entry] = await store.load('doc');
    expect(entry?.data.byteLength).toBe(3);
    expect(entry?.data.buffer.byteLength).toBe(3);
    await store.close();
  });

  it('answers a burst of loads of many documents, each with its own entries, after the writes they follow', async () => {
    const store = new IndexedDbDocStore({ name: 'burst', indexedDB: new IDBFactory(), IDBKeyRange });
    const names = Array.from({ length: 50 }, (_, i) => `doc-${i}`);
    await store.appendBatch(
      names.flatMap((doc, i) => [
        { doc, data: new Uint8Array([i]) },
        { doc, data: new Uint8Array([i, i]) },
      ]),
    );
    // Loads asked for together share read transactions; each must still get only its document.
    const loaded = await Promise.all(names.map((doc) => store.load(doc)));
    expect(loaded.map((entries) => entries.map((e) => [...e.data]))).toEqual(
      names.map((_, i) => [[i], [i, i]]),
    );
    // A load asked for while a batch is in flight, after an append resolved, sees that append.
    const first = store.load('doc-0');
    await store.append('doc-0', new Uint8Array([9]));
    const [before, after] = await Promise.all([first, store.load('doc-0', 2)]);
    expect(before.length).toBeGreaterThanOrEqual(2);
    expect(after.map((e) => [e.seq, ...e.data])).toEqual([[3, 9]]);
    await store.close();
    await expect(store.load('doc-0')).rejects.toThrow(/closed/);
  });
});
