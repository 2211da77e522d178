import { MemoryDocStore, type StoredEntry } from '@scopesync/core';
import { seeds, withSeed } from '@scopesync/testing';
import { IDBFactory, IDBKeyRange, IDBObjectStore } from 'fake-indexeddb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DocOrder } from './indexed-db-doc-order.ts';
import { IndexedDbDocStore } from './indexed-db-doc-store.ts';
import { PACK_MAX_BYTES } from './indexed-db-entry-packs.ts';

const plain = (entries: readonly StoredEntry[]) => entries.map((e) => [e.seq, ...e.data]);

/** Counts the `getAll` requests made on any object store from now on. */
function countGetAll(): () => number {
  const spy = vi.spyOn(IDBObjectStore.prototype, 'getAll');
  return () => spy.mock.calls.length;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('DocOrder', () => {
  it('groups documents next to each other into runs, in key order, and leaves unknown ones alone', () => {
    const order = new DocOrder(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(order.spans(['e', 'a', 'b', 'd', 'x', 'f'])).toEqual([['x'], ['a', 'b'], ['d', 'e', 'f']]);
    expect(order.spans(['c'])).toEqual([['c']]);
    expect(order.spans([])).toEqual([]);
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
