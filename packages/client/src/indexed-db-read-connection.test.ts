import { MemoryKeyValueStore } from '@scopesync/core';
import { Dexie } from 'dexie';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import { indexedDbClientStore } from './client-store.ts';
import { type EntryRow, type KvRow, ScopesyncDatabase } from './indexed-db-database.ts';
import { IndexedDbDocStore } from './indexed-db-doc-store.ts';
import { unpack } from './indexed-db-entry-packs.ts';
import { IndexedDbKeyValueStore } from './indexed-db-key-value-store.ts';
import { READ_STORES } from './indexed-db-read-connection.ts';

/** A factory that records the version of every open: Dexie passes one (10), the plain read connection none. */
function recordingFactory(): { indexedDB: IDBFactory; opens: Array<number | undefined> } {
  const indexedDB = new IDBFactory();
  const opens: Array<number | undefined> = [];
  const open = indexedDB.open.bind(indexedDB);
  indexedDB.open = (name: string, version?: number) => {
    opens.push(version);
    return version === undefined ? open(name) : open(name, version);
  };
  return { indexedDB, opens };
}

/** Fills a database through the stores (Dexie writes) and closes it. */
async function fill(indexedDB: IDBFactory, name: string): Promise<void> {
  const store = indexedDbClientStore({ name, indexedDB, IDBKeyRange });
  for (let d = 0; d < 5; d++) {
    await store.docs.appendBatch(
      Array.from({ length: 3 }, (_, i) => ({ doc: `doc-${d}`, data: new Uint8Array([d, i, 255]) })),
    );
    await store.kv.put('docs', `doc-${d}`, { name: `doc-${d}`, lastServerSeq: d, acked: [1, 2] });
  }
  await store.kv.put('keys', 'doc:x', { wrapped: new Uint8Array([9, 8, 7]), at: new Date(0) });
  await store.docs.compact('doc-1', 2, new Uint8Array([42]));
  await store.docs.remove('doc-4');
  await Promise.all([store.docs.close(), store.kv.close()]);
}

/** What the stores' read methods answer, for comparing two ways of opening the same database. */
async function readAll(database: ScopesyncDatabase) {
  const docs = new IndexedDbDocStore(database);
  const kv = new IndexedDbKeyValueStore(database);
  const names = ['doc-0', 'doc-1', 'doc-2', 'doc-3', 'doc-4', 'missing'];
  const result = await Promise.all(
    names.map(async (doc) => ({
      doc,
      entries: (await docs.load(doc)).map((e) => [e.seq, ...e.data]),
      since: (await docs.load(doc, 1, 1)).map((e) => [e.seq, ...e.data]),
      head: await docs.head(doc),
      meta: await kv.get('docs', doc),
    })),
  );
  const key = await kv.get('keys', 'doc:x');
  await Promise.all([docs.close(), kv.close()]);
  return { result, key };
}

describe('the plain read connection', () => {
  it('reads a database Dexie wrote exactly as Dexie reads it, without opening Dexie', async () => {
    const { indexedDB, opens } = recordingFactory();
    await fill(indexedDB, 'both');

    // Dexie's own reads of the same records, for the expected answer.
    const dexie = new Dexie('both', { indexedDB, IDBKeyRange });
    dexie.version(1).stores({ entries: '[doc+seq], doc', heads: 'doc', kv: '[table+key], table' });
    const rows = (await dexie.table<EntryRow>('entries').toArray()).flatMap((row) =>
      unpack(row).map((entry) => ({ doc: row.doc, ...entry })),
    );
    const heads = await dexie.table<{ doc: string; seq: number }>('heads').toArray();
    const kvRows = await dexie.table<KvRow>('kv').toArray();
    dexie.close();

    opens.length = 0;
    const { result, key } = await readAll(new ScopesyncDatabase({ name: 'both', indexedDB, IDBKeyRange }));
    // Only the plain connection opened the database: no versioned (Dexie) open.
    expect(opens).toEqual([undefined]);

    expect(result).toEqual(
      ['doc-0', 'doc-1', 'doc-2', 'doc-3', 'doc-4', 'missing'].map((doc) => {
        const entries = rows.filter((r) => r.doc === doc).map((r) => [r.seq, ...r.data]);
        return {
          doc,
          entries,
          since: entries.filter(([seq]) => (seq as number) > 1).slice(0, 1),
          head: heads.find((h) => h.doc === doc)?.seq ?? 0,
          meta: kvRows.find((r) => r.table === 'docs' && r.key === doc)?.value,
        };
      }),
    );
    expect(result[1]?.entries).toEqual([
      [2, 42],
      [3, 1, 2, 255],
    ]);
    expect(result[4]).toMatchObject({ entries: [], head: 3 });
    expect(key).toEqual({ wrapped: new Uint8Array([9, 8, 7]), at: new Date(0) });
  });

  it('leaves a database that does not exist to Dexie, which creates it with its schema', async () => {
    const { indexedDB, opens } = recordingFactory();
    const database = new ScopesyncDatabase({ name: 'fresh', indexedDB, IDBKeyRange });
    const docs = new IndexedDbDocStore(database);
    expect(await docs.load('doc')).toEqual([]);
    expect(await docs.head('doc')).toBe(0);
    // The plain open found nothing (and aborted its creation); Dexie opened at its version.
    expect(opens).toEqual([undefined, 10]);
    await docs.append('doc', new Uint8Array([1]));
    expect((await docs.load('doc')).map((e) => [...e.data])).toEqual([[1]]);
    await docs.close();
    expect(await indexedDB.databases()).toEqual([{ name: 'fresh', version: 10 }]);
    await expectSchema(indexedDB, 'fresh');
  });

  it('leaves a database without the schema to Dexie, which upgrades it', async () => {
    const indexedDB = new IDBFactory();
    const empty = await settle(indexedDB.open('old', 1));
    empty.close();
    const docs = new IndexedDbDocStore({ name: 'old', indexedDB, IDBKeyRange });
    expect(await docs.load('doc')).toEqual([]);
    await docs.append('doc', new Uint8Array([1]));
    await docs.close();
    await expectSchema(indexedDB, 'old');
  });

  it('reads what Dexie writes while both connections are open, and closes both', async () => {
    const { indexedDB, opens } = recordingFactory();
    await fill(indexedDB, 'mixed');
    opens.length = 0;
    const docs = new IndexedDbDocStore({ name: 'mixed', indexedDB, IDBKeyRange });
    expect(await docs.head('doc-0')).toBe(3);
    await docs.append('doc-0', new Uint8Array([7]));
    // A read after a write that resolved sees it, though the write went through the other connection.
    expect(await docs.head('doc-0')).toBe(4);
    expect((await docs.load('doc-0', 3)).map((e) => [e.seq, ...e.data])).toEqual([[4, 7]]);
    expect(opens).toEqual([undefined, 10]);
    await docs.close();
    // Neither connection is left open: a deletion is not blocked.
    await expectDeleted(indexedDB, 'mixed');
  });

  it('lists exactly the keys under a prefix, as the memory store does, without opening Dexie', async () => {
    const { indexedDB, opens } = recordingFactory();
    const keys = [
      'a',
      'a\uffff',
      'a\uffffb',
      'a\uffff\uffff',
      'ab',
      'b',
      'b\u0000',
      '\uffff',
      'doc:blob/1',
      'doc:blob0',
    ];
    const writer = new IndexedDbKeyValueStore({ name: 'list', indexedDB, IDBKeyRange });
    const memory = new MemoryKeyValueStore();
    for (const kv of [writer, memory]) {
      for (const key of keys) await kv.put('t', key, key.length);
      await kv.put('s', 'a', 'other table');
      await kv.put('u', 'a', 'other table');
    }
    await writer.close();
    opens.length = 0;
    const reader = new IndexedDbKeyValueStore({ name: 'list', indexedDB, IDBKeyRange });
    for (const prefix of ['', 'a', 'a\uffff', 'a\uffff\uffff', 'b', '\uffff', 'doc:blob/', 'zz']) {
      expect(await reader.list('t', prefix)).toEqual(await memory.list('t', prefix));
    }
    expect(opens).toEqual([undefined]);
    await reader.close();
  });

  it('lets another connection change the database, then reads again', async () => {
    const indexedDB = new IDBFactory();
    await fill(indexedDB, 'changed');
    const docs = new IndexedDbDocStore({ name: 'changed', indexedDB, IDBKeyRange });
    expect(await docs.head('doc-0')).toBe(3);
    // Another tab deletes the database while this one has only read it: not blocked by the read connection.
    await expectDeleted(indexedDB, 'changed');
    expect(await docs.load('doc-0')).toEqual([]);
    await docs.append('doc-0', new Uint8Array([1]));
    expect(await docs.head('doc-0')).toBe(1);
    await docs.close();
  });
});

function settle<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function expectDeleted(indexedDB: IDBFactory, name: string): Promise<void> {
  const request = indexedDB.deleteDatabase(name);
  let blocked = false;
  request.onblocked = () => {
    blocked = true;
  };
  await settle(request);
  expect(blocked).toBe(false);
  expect(await indexedDB.databases()).toEqual([]);
}

/** The database has Dexie's version 1 layout, which is what the plain read connection checks for. */
async function expectSchema(indexedDB: IDBFactory, name: string): Promise<void> {
  const db = await settle(indexedDB.open(name));
  expect(db.version).toBe(10);
  const names = Array.from(db.objectStoreNames as ArrayLike<string>);
  const tx = db.transaction(names, 'readonly');
  const layout = Object.fromEntries(
    names.map((store) => {
      const s = tx.objectStore(store);
      const indexes = Array.from(s.indexNames as ArrayLike<string>, (i) => [i, s.index(i).keyPath]);
      return [store, { keyPath: s.keyPath, indexes }];
    }),
  );
  expect(layout).toEqual({
    entries: { keyPath: READ_STORES.entries, indexes: [['doc', 'doc']] },
    heads: { keyPath: READ_STORES.heads, indexes: [] },
    kv: { keyPath: READ_STORES.kv, indexes: [['table', 'table']] },
  });
  db.close();
}
