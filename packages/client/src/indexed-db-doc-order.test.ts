import { MemoryDocStore, type StoredEntry } from '@scopesync/core';
import { seeds, withSeed } from '@scopesync/testing';
import { IDBFactory, IDBKeyRange, IDBObjectStore } from 'fake-indexeddb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { indexedDbClientStore } from './client-store.ts';
import { DocOrder } from './indexed-db-doc-order.ts';
import { IndexedDbDocStore } from './indexed-db-doc-store.ts';
import { PACK_MAX_BYTES } from './indexed-db-entry-packs.ts';

const plain = (entries: readonly StoredEntry[]) => entries.map((e) => [e.seq, ...e.data]);

/** Counts the `getAll` requests made on any object store from now on. */
function countGetAll(): () => number {
  const spy = vi.spyOn(IDBObjectStore.prototype, 'getAll');
  return () => spy.mock.calls.length;
}

/** Counts the `get` and `getAll` requests made on any object store from now on. */
function countReads(): () => number {
  const get = vi.spyOn(IDBObjectStore.prototype, 'get');
  const getAll = vi.spyOn(IDBObjectStore.prototype, 'getAll');
  return () => get.mock.calls.length + getAll.mock.calls.length;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('DocOrder', () => {
  it('groups documents next to each other into runs, in key order, and leaves unknown ones alone', () => {
    const order = new DocOrder(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    expect(order.spans(['e', 'a', 'b', 'x', 'f'])).toEqual([['x'], ['a', 'b'], ['e', 'f']]);
    expect(order.spans(['c'])).toEqual([['c']]);
    expect(order.spans([])).toEqual([]);
  });

  it('steps over one document not asked for, never two', () => {
    const order = new DocOrder(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    // c and e are stepped over (read and dropped); between f and i lie two.
    expect(order.spans(['a', 'b', 'd', 'f', 'i'])).toEqual([['a', 'b', 'd', 'f'], ['i']]);
  });
});

describe('a burst of whole-log loads', () => {
  it('reads the logs of documents next to each other with one request, each document getting its own', async () => {
    const indexedDB = new IDBFactory();
    const open = () => new IndexedDbDocStore({ name: 'runs', indexedDB, IDBKeyRange });
    const writer = open();
    const names = Array.from({ length: 20 }, (_, i) => `doc-${String(i).padStart(2, '0')}`);
    // Several rows a document: small entries packed, one too large to pack between them.
    for (const [d, doc] of names.entries()) {
      await writer.appendBatch([1, 2, 3].map((i) => ({ doc, data: new Uint8Array([d, i]) })));
      await writer.append(doc, new Uint8Array(PACK_MAX_BYTES + 1).fill(d));
      await writer.append(doc, new Uint8Array([d, 9]));
    }
    await writer.close();

    const reader = open();
    // A lone first load, then a burst that reads the order of the documents once.
    expect(plain(await reader.load('doc-00'))).toHaveLength(5);
    const requests = countGetAll();
    const loaded = await Promise.all(names.map((doc) => reader.load(doc)));
    expect(loaded.map((entries) => entries.map((e) => [e.seq, e.data[0], e.data.byteLength]))).toEqual(
      names.map((_, d) => [
        [1, d, 2],
        [2, d, 2],
        [3, d, 2],
        [4, d, PACK_MAX_BYTES + 1],
        [5, d, 2],
      ]),
    );
    // All twenty lie next to each other: one request for their logs (one per document before).
    expect(requests()).toBe(1);
    await reader.close();
  });

  it('reads every other document of a run with one request, and drops the rows of those stepped over', async () => {
    const indexedDB = new IDBFactory();
    const open = () => new IndexedDbDocStore({ name: 'stepped', indexedDB, IDBKeyRange });
    const writer = open();
    const names = Array.from({ length: 12 }, (_, i) => `doc-${String(i).padStart(2, '0')}`);
    for (const [d, doc] of names.entries()) await writer.appendBatch([{ doc, data: new Uint8Array([d]) }]);
    await writer.close();

    const reader = open();
    await reader.load('doc-00');
    const requests = countGetAll();
    const even = names.filter((_, d) => d % 2 === 0);
    const loaded = await Promise.all(even.map((doc) => reader.load(doc)));
    expect(loaded.map(plain)).toEqual(even.map((_, k) => [[1, 2 * k]]));
    // One for the six logs and the five between them (six before this change).
    expect(requests()).toBe(1);
    await reader.close();
  });

  it('gives no reader the rows of a document written since the order was read, between its neighbours', async () => {
    const indexedDB = new IDBFactory();
    const open = () => new IndexedDbDocStore({ name: 'stale', indexedDB, IDBKeyRange });
    const reader = open();
    for (const doc of ['a', 'c', 'e']) await reader.append(doc, new TextEncoder().encode(doc));
    // The reader's first burst reads the order: a, c, e.
    await Promise.all(['a', 'c'].map((doc) => reader.load(doc)));
    // Another tab writes b and d, which now lie between them, and removes e's log.
    const tab = open();
    await tab.append('b', new Uint8Array([98]));
    await tab.appendBatch([{ doc: 'd', data: new Uint8Array([100]) }]);
    await tab.remove('e');
    await tab.close();
    const loaded = await Promise.all(['a', 'b', 'c', 'd', 'e', 'a'].map((doc) => reader.load(doc)));
    expect(loaded.map(plain)).toEqual([[[1, 97]], [[1, 98]], [[1, 99]], [[1, 100]], [], [[1, 97]]]);
    await reader.close();
  });

  for (const seed of seeds(3)) {
    it(`answers as the memory store does while another tab writes [seed ${seed}]`, () =>
      withSeed('bursts of loads against the memory store', seed, async (random) => {
        const indexedDB = new IDBFactory();
        const open = () => new IndexedDbDocStore({ name: 'bursts', indexedDB, IDBKeyRange });
        const reader = open();
        const writer = open();
        const model = new MemoryDocStore();
        const docs = Array.from({ length: 12 }, (_, i) => `d${i}`);
        for (let step = 0; step < 60; step++) {
          const doc = random.pick(docs);
          const op = random.int(0, 9);
          if (op < 6) {
            const items = Array.from({ length: random.int(1, 6) }, () => ({
              doc: random.pick(docs),
              data: random.bytes(random.int(0, 9) === 0 ? PACK_MAX_BYTES + 1 : random.int(1, 30)),
            }));
            expect(await writer.appendBatch(items)).toEqual(await model.appendBatch(items));
          } else if (op < 7) {
            await writer.remove(doc);
            await model.remove(doc);
          } else {
            // Loads asked for in one turn, a document maybe twice; some ask from a seq.
            const asked = Array.from({ length: random.int(1, 10) }, () => random.pick(docs));
            const since = asked.map(() => (random.int(0, 4) === 0 ? random.int(1, 3) : 0));
            const got = await Promise.all(asked.map((d, i) => reader.load(d, since[i])));
            const want = await Promise.all(asked.map((d, i) => model.load(d, since[i])));
            expect(got.map(plain)).toEqual(want.map(plain));
          }
        }
        await Promise.all([reader.close(), writer.close()]);
      }));
  }
});

describe('a burst of records keyed by document name', () => {
  it('reads the records of documents next to each other with one request, each reader getting its own', async () => {
    const indexedDB = new IDBFactory();
    const open = () => indexedDbClientStore({ name: 'records', indexedDB, IDBKeyRange });
    const writer = open();
    const names = Array.from({ length: 12 }, (_, i) => `doc-${String(i).padStart(2, '0')}`);
    for (const [d, doc] of names.entries()) {
      await writer.docs.append(doc, new Uint8Array([d]));
      // doc-05 has a log but no record; every record has a twin in another table.
      if (d !== 5) await writer.kv.put('docs', doc, { d });
      await writer.kv.put('other', doc, { other: d });
    }
    await Promise.all([writer.docs.close(), writer.kv.close()]);

    const reader = open();
    await reader.kv.get('docs', 'doc-00');
    const requests = countReads();
    // Every other document, one twice, as a page opening them asks (record and log together).
    const asked = [...names.filter((_, d) => d % 2 === 0), 'doc-10', 'doc-05'];
    const [records, logs] = await Promise.all([
      Promise.all(asked.map((doc) => reader.kv.get('docs', doc))),
      Promise.all(asked.map((doc) => reader.docs.load(doc))),
    ]);
    expect(records).toEqual(asked.map((doc) => (doc === 'doc-05' ? undefined : { d: Number(doc.slice(4)) })));
    expect(logs.map(plain)).toEqual(asked.map((doc) => [[1, Number(doc.slice(4))]]));
    // One for the records, one for the logs (thirteen before: a get per record, and a getAll
    // per run of neighbouring logs).
    expect(requests()).toBe(2);
    await Promise.all([reader.docs.close(), reader.kv.close()]);
  });

  for (const seed of seeds(3)) {
    it(`answers as the memory store does while another tab writes [seed ${seed}]`, () =>
      withSeed('bursts of record reads against a map', seed, async (random) => {
        const indexedDB = new IDBFactory();
        const open = () => indexedDbClientStore({ name: 'record-bursts', indexedDB, IDBKeyRange });
        const reader = open();
        const writer = open();
        const model = new Map<string, unknown>();
        const docs = Array.from({ length: 12 }, (_, i) => `d${i}`);
        const tables = ['docs', 'keys'];
        for (let step = 0; step < 60; step++) {
          const doc = random.pick(docs);
          const table = random.pick(tables);
          const op = random.int(0, 9);
          if (op < 3) {
            await writer.docs.append(doc, new Uint8Array([step]));
          } else if (op < 6) {
            await writer.kv.put(table, doc, { step });
            model.set(`${table}/${doc}`, { step });
          } else if (op < 7) {
            await writer.kv.delete(table, doc);
            model.delete(`${table}/${doc}`);
          } else {
            // Records asked for in one turn, a name maybe twice, from both tables.
            const asked = Array.from(
              { length: random.int(1, 10) },
              () => [random.pick(tables), random.pick(docs)] as const,
            );
            const got = await Promise.all(asked.map(([t, d]) => reader.kv.get(t, d)));
            expect(got).toEqual(asked.map(([t, d]) => model.get(`${t}/${d}`)));
          }
        }
        await Promise.all([reader.docs.close(), reader.kv.close(), writer.docs.close(), writer.kv.close()]);
      }));
  }
});
