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
});
