import {
  type AppendItem,
  type DocName,
  MemoryDocStore,
  parseDocName,
  type StoredEntry,
  SyncError,
} from '@scopesync/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as Y from 'yjs';
import { LocalEventBus } from '../events/local-event-bus.ts';
import { type ChangeOrigin, type RelayEvent, RUNTIME_ORIGIN } from '../events/relay-events.ts';
import { Metrics } from '../metrics.ts';
import type { SyncLog } from '../sync/sync-log.ts';
import { DocHub, type DocHubOptions } from './doc-hub.ts';

const NOTES = parseDocName('PUBLIC_RW/_/notes').name;
const OTHER = parseDocName('PUBLIC_RW/_/other').name;
const PRIVATE = parseDocName('USER_PRIVATE/user_0123456789abcdef/diary').name;
const BLOB = parseDocName('blob/b1').name;

/** A MemoryDocStore that can hold commits back, fail them, and counts batches. */
class TestStore extends MemoryDocStore {
  batches: AppendItem[][] = [];
  gate: Promise<void> | null = null;
  failNext: Error | null = null;
  compactGate: Promise<void> | null = null;

  override async appendBatch(items: readonly AppendItem[]): Promise<number[]> {
    this.batches.push([...items]);
    if (this.gate) await this.gate;
    if (this.failNext) {
      const error = this.failNext;
      this.failNext = null;
      throw error;
    }
    return super.appendBatch(items);
  }

  override async compact(doc: string, throughSeq: number, snapshot: Uint8Array): Promise<void> {
    if (this.compactGate) await this.compactGate;
    return super.compact(doc, throughSeq, snapshot);
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const hubs: DocHub[] = [];
function makeHub(
  store = new TestStore(),
  options: Partial<DocHubOptions> = {},
): { hub: DocHub; store: TestStore; logs: unknown[][]; events: RelayEvent[]; bus: LocalEventBus } {
  const logs: unknown[][] = [];
  const log: SyncLog = (...args) => {
    logs.push(args);
  };
  const bus = new LocalEventBus();
  const events: RelayEvent[] = [];
  bus.on('doc-updated', (e) => {
    events.push(e);
  });
  bus.on('envelope-appended', (e) => {
    events.push(e);
  });
  const hub = new DocHub({ store, bus, metrics: new Metrics(), log, ...options });
  hubs.push(hub);
  return { hub, store, logs, events, bus };
}

const SOCKET: ChangeOrigin = { source: 'socket', session: 1 };

afterEach(async () => {
  await Promise.all(hubs.splice(0).map((h) => h.close()));
});

/** A Yjs update that sets `data.key = value` on a fresh client. */
function updateSetting(key: string, value: unknown, base?: Y.Doc): Uint8Array {
  const doc = base ?? new Y.Doc();
  const before = Y.encodeStateVector(doc);
  doc.getMap('data').set(key, value);
  return Y.encodeStateAsUpdate(doc, before);
}

async function contentOf(store: MemoryDocStore, name: string): Promise<Record<string, unknown>> {
  const doc = new Y.Doc();
  for (const e of await store.load(name)) Y.applyUpdate(doc, e.data);
  return doc.getMap('data').toJSON();
}

describe('DocHub plaintext writes', () => {
  it('stores a transaction and resolves with its seq only after the commit', async () => {
    const { hub, store } = makeHub();
    const gate = deferred();
    store.gate = gate.promise;
    let settled = false;
    const write = hub
      .transact(NOTES, (doc) => doc.getMap('data').set('title', 'hello'), RUNTIME_ORIGIN)
      .then((r) => {
        settled = true;
        return r;
      });
    await vi.waitFor(() => expect(store.batches).toHaveLength(1));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    gate.resolve();
    expect(await write).toEqual({ seq: 1 });
    expect(await hub.head(NOTES)).toBe(1);
    expect(await contentOf(store, NOTES)).toEqual({ title: 'hello' });
  });

  it('does not append when the transaction changes nothing', async () => {
    const { hub, store } = makeHub();
    await hub.transact(NOTES, (doc) => doc.getMap('data').set('a', 1), RUNTIME_ORIGIN);
    const result = await hub.transact(NOTES, () => undefined, RUNTIME_ORIGIN);
    expect(result).toEqual({ seq: 1 });
    expect(store.batches).toHaveLength(1);
  });

  it('drops a change made outside transact on the next use, and logs it', async () => {
    const { hub, logs } = makeHub();
    await hub.applyUpdate(NOTES, updateSetting('kept', 1), SOCKET);
    // A read callback must not change the document; this one does, behind the store's back.
    await hub.read(NOTES, (doc) => doc.getMap('data').set('sneaked', true));
    const data = await hub.read(NOTES, (doc) => doc.getMap('data').toJSON());
    expect(data).toEqual({ kept: 1 });
    expect(logs.some(([, message]) => String(message).includes('outside DocHub.transact'))).toBe(true);
  });

  it('discards the changes of a transaction that throws', async () => {
    const { hub, store } = makeHub();
    await hub.transact(NOTES, (doc) => doc.getMap('data').set('a', 1), RUNTIME_ORIGIN);
    await expect(
      hub.transact(
        NOTES,
        (doc) => {
          doc.getMap('data').set('b', 2);
          throw new Error('boom');
        },
        RUNTIME_ORIGIN,
      ),
    ).rejects.toThrow('boom');
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({ a: 1 });
    expect(await contentOf(store, NOTES)).toEqual({ a: 1 });
  });

  it('refuses a malformed update before it touches the store or the document', async () => {
    const { hub, store } = makeHub();
    await hub.applyUpdate(NOTES, updateSetting('a', 1), RUNTIME_ORIGIN);
    for (const garbage of [
      new Uint8Array([1, 2, 3, 4, 5, 250, 251]),
      new Uint8Array([0]),
      new Uint8Array([200, 200, 200]),
    ]) {
      await expect(hub.applyUpdate(NOTES, garbage, RUNTIME_ORIGIN)).rejects.toMatchObject({
        kind: 'InvalidMessage',
      });
    }
    expect(store.batches).toHaveLength(1);
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({ a: 1 });
  });

  it('acks a duplicate update without storing it again', async () => {
    const { hub, store } = makeHub();
    const update = updateSetting('a', 1);
    expect(await hub.applyUpdate(NOTES, update, RUNTIME_ORIGIN)).toEqual({ seq: 1 });
    expect(await hub.applyUpdate(NOTES, update, RUNTIME_ORIGIN)).toEqual({ seq: 1 });
    expect(await store.load(NOTES)).toHaveLength(1);
  });

  it('does not ack a duplicate before the original is committed', async () => {
    const { hub, store } = makeHub();
    const gate = deferred();
    store.gate = gate.promise;
    const update = updateSetting('a', 1);
    const first = hub.applyUpdate(NOTES, update, RUNTIME_ORIGIN);
    let duplicateAcked = false;
    const second = hub.applyUpdate(NOTES, update, RUNTIME_ORIGIN).then((r) => {
      duplicateAcked = true;
      return r;
    });
    await vi.waitFor(() => expect(store.batches).toHaveLength(1));
    await new Promise((r) => setImmediate(r));
    expect(duplicateAcked).toBe(false);
    gate.resolve();
    expect(await first).toEqual({ seq: 1 });
    expect(await second).toEqual({ seq: 1 });
  });

  it('stores an update whose dependencies are missing, so it survives a reload', async () => {
    const { hub, store } = makeHub();
    const client = new Y.Doc();
    updateSetting('a', 1, client);
    const second = updateSetting('b', 2, client); // depends on the first, which never arrives
    expect(await hub.applyUpdate(NOTES, second, RUNTIME_ORIGIN)).toEqual({ seq: 1 });
    expect(await store.load(NOTES)).toHaveLength(1);
  });

  it('commits the writes of one tick, across documents, in one batch', async () => {
    const { hub, store } = makeHub();
    // Load both documents first so that the writes below reach the queue in the same tick.
    await hub.read(NOTES, () => undefined);
    await hub.read(OTHER, () => undefined);
    const results = await Promise.all([
      hub.applyUpdate(NOTES, updateSetting('a', 1), RUNTIME_ORIGIN),
      hub.applyUpdate(OTHER, updateSetting('b', 2), RUNTIME_ORIGIN),
      hub.transact(NOTES, (doc) => doc.getMap('data').set('c', 3), RUNTIME_ORIGIN),
    ]);
    expect(store.batches).toHaveLength(1);
    expect(store.batches[0]?.map((i) => i.doc)).toEqual([NOTES, OTHER, NOTES]);
    expect(results).toEqual([{ seq: 1 }, { seq: 1 }, { seq: 2 }]);
  });

  it("stores one socket's updates of a tick as one entry, acked and announced committed with its seq once", async () => {
    const { hub, store, bus } = makeHub();
    await hub.read(NOTES, () => undefined);
    const base = new Y.Doc();
    const first = updateSetting('a', 1, base);
    const second = updateSetting('b', 2, base);
    const third = updateSetting('c', 3, base);
    const other: ChangeOrigin = { source: 'socket', session: 2 };
    // The feed and other relays follow seqs through doc-committed.
    const committed: RelayEvent[] = [];
    bus.on('doc-committed', (e) => {
      committed.push(e);
    });
    const gate = deferred();
    store.gate = gate.promise;
    const acks = Promise.all([
      hub.applyUpdate(NOTES, first, SOCKET),
      hub.applyUpdate(NOTES, second, SOCKET),
      hub.applyUpdate(NOTES, updateSetting('x', 9), other),
      hub.applyUpdate(NOTES, third, SOCKET),
    ]);
    await vi.waitFor(() => expect(store.batches).toHaveLength(1));
    // The first two are one row; another socket's write ends it, the third starts a new one.
    expect(store.batches[0]).toHaveLength(3);
    let acked = false;
    void acks.then(() => {
      acked = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(acked).toBe(false);
    gate.resolve();
    expect(await acks).toEqual([{ seq: 1 }, { seq: 1 }, { seq: 2 }, { seq: 3 }]);
    expect(committed.map((e) => (e.type === 'doc-committed' ? e.seq : -1))).toEqual([1, 2, 3]);
    const row = committed[0];
    const merged = new Y.Doc();
    if (row?.type === 'doc-committed') Y.applyUpdate(merged, row.update);
    expect(merged.getMap('data').toJSON()).toEqual({ a: 1, b: 2 });
    expect(await contentOf(store, NOTES)).toEqual({ a: 1, b: 2, c: 3, x: 9 });
  });

  it('keeps a seq per write for writes that are not a socket’s', async () => {
    const { hub, store } = makeHub();
    await hub.read(NOTES, () => undefined);
    const results = await Promise.all([
      hub.applyUpdate(NOTES, updateSetting('a', 1), RUNTIME_ORIGIN),
      hub.applyUpdate(NOTES, updateSetting('b', 2), RUNTIME_ORIGIN),
    ]);
    expect(store.batches).toHaveLength(1);
    expect(results).toEqual([{ seq: 1 }, { seq: 2 }]);
  });

  it('rejects the writers of a failed commit, keeps serving, and does not remember what failed', async () => {
    const { hub, store, logs } = makeHub();
    await hub.applyUpdate(NOTES, updateSetting('a', 1), RUNTIME_ORIGIN);
    store.failNext = new Error('disk full');
    const lost = updateSetting('b', 2);
    await expect(hub.applyUpdate(NOTES, lost, RUNTIME_ORIGIN)).rejects.toBeInstanceOf(SyncError);
    expect(logs.some(([level]) => level === 'error')).toBe(true);
    // The failed update is not in the relay's document any more, so sending it again stores it.
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({ a: 1 });
    expect(await hub.applyUpdate(NOTES, lost, RUNTIME_ORIGIN)).toEqual({ seq: 2 });
    expect(await contentOf(store, NOTES)).toEqual({ a: 1, b: 2 });
  });

  it('announces updates on the bus at once, with their origin, and acks only after the commit', async () => {
    const { hub, store, events } = makeHub();
    const gate = deferred();
    store.gate = gate.promise;
    let acked = false;
    const update = updateSetting('a', 1);
    const write = hub.applyUpdate(NOTES, update, SOCKET).then(() => {
      acked = true;
    });
    await vi.waitFor(() => expect(store.batches).toHaveLength(1));
    // Readers have it while the store is still committing; the writer has no ack yet.
    expect(events).toEqual([{ type: 'doc-updated', name: NOTES, update, seq: null, origin: SOCKET }]);
    expect(acked).toBe(false);
    gate.resolve();
    await write;
    expect(acked).toBe(true);
    expect(events).toHaveLength(1);
  });

  it('announces what a transaction changed, and nothing for one that changed nothing or threw', async () => {
    const { hub, events } = makeHub();
    await hub.transact(NOTES, (doc) => doc.getMap('data').set('a', 1), RUNTIME_ORIGIN);
    await hub.transact(NOTES, () => undefined, RUNTIME_ORIGIN);
    await expect(
      hub.transact(
        NOTES,
        (doc) => {
          doc.getMap('data').set('b', 2);
          throw new Error('boom');
        },
        RUNTIME_ORIGIN,
      ),
    ).rejects.toThrow('boom');
    expect(events).toHaveLength(1);
    const reader = new Y.Doc();
    const first = events[0];
    if (first?.type !== 'doc-updated') throw new Error('expected a doc-updated event');
    expect(first.origin).toBe(RUNTIME_ORIGIN);
    Y.applyUpdate(reader, first.update);
    expect(reader.getMap('data').toJSON()).toEqual({ a: 1 });
  });

  it('leaves no gap for a reader that listens, then holds and reads', async () => {
    const { hub, events } = makeHub();
    await hub.applyUpdate(NOTES, updateSetting('before', 1), RUNTIME_ORIGIN);
    events.length = 0; // the reader starts listening now
    const holding = hub.hold(NOTES, 'plaintext');
    const during = hub.applyUpdate(NOTES, updateSetting('during', 2), RUNTIME_ORIGIN);
    const hold = await holding;
    const state = await hub.read(NOTES, (doc) => Y.encodeStateAsUpdate(doc));
    await hub.applyUpdate(NOTES, updateSetting('after', 3), RUNTIME_ORIGIN);
    await during;
    const reader = new Y.Doc();
    Y.applyUpdate(reader, state);
    for (const e of events) if (e.type === 'doc-updated') Y.applyUpdate(reader, e.update);
    expect(reader.getMap('data').toJSON()).toEqual({ before: 1, during: 2, after: 3 });
    hold.release();
  });

  it('reloads an evicted document from the store', async () => {
    const { hub, store } = makeHub(new TestStore(), { idleMs: 1 });
    await hub.transact(NOTES, (doc) => doc.getMap('data').set('a', 1), RUNTIME_ORIGIN);
    await vi.waitFor(() => expect(hub.openDocs).toBe(0));
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({ a: 1 });
    expect(await store.load(NOTES)).toHaveLength(1);
  });

  it('names a loaded document after its address instead of drawing a random guid per load', async () => {
    // A random guid costs 31 WebCrypto draws per load, a fifth of a resubscribe to an evicted document.
    const { hub } = makeHub();
    await hub.transact(NOTES, (doc) => doc.getMap('data').set('a', 1), RUNTIME_ORIGIN);
    expect(await hub.read(NOTES, (doc) => doc.guid)).toBe(NOTES);
  });

  it('keeps a held document in memory until every hold is released', async () => {
    const { hub } = makeHub(new TestStore(), { idleMs: 1 });
    const first = await hub.hold(NOTES, 'plaintext');
    const second = await hub.hold(NOTES, 'plaintext');
    await new Promise((r) => setTimeout(r, 20));
    expect(hub.openDocs).toBe(1);
    first.release();
    first.release(); // idempotent: does not release the second hold
    await new Promise((r) => setTimeout(r, 20));
    expect(hub.openDocs).toBe(1);
    second.release();
    await vi.waitFor(() => expect(hub.openDocs).toBe(0));
  });

  it('refuses plaintext access to USER_PRIVATE documents', async () => {
    const { hub } = makeHub();
    await expect(hub.applyUpdate(PRIVATE, updateSetting('a', 1), RUNTIME_ORIGIN)).rejects.toMatchObject({
      kind: 'BadRequest',
    });
    await expect(hub.hold(PRIVATE, 'plaintext')).rejects.toMatchObject({ kind: 'BadRequest' });
    await expect(hub.hold(NOTES, 'encrypted')).rejects.toMatchObject({ kind: 'BadRequest' });
  });

  it('close() commits what is pending and is idempotent', async () => {
    const { hub, store } = makeHub();
    const write = hub.applyUpdate(NOTES, updateSetting('a', 1), RUNTIME_ORIGIN);
    await Promise.all([hub.close(), hub.close()]);
    expect(await write).toEqual({ seq: 1 });
    expect(await store.load(NOTES)).toHaveLength(1);
    await expect(hub.applyUpdate(NOTES, updateSetting('b', 1), RUNTIME_ORIGIN)).rejects.toMatchObject({
      kind: 'Unavailable',
    });
  });
});

describe('DocHub compaction', () => {
  it('merges the log after compactAfter entries without losing content', async () => {
    const { hub, store } = makeHub(new TestStore(), { compactAfter: 5 });
    for (let i = 0; i < 12; i++)
      await hub.transact(NOTES, (doc) => doc.getMap('data').set(`k${i}`, i), RUNTIME_ORIGIN);
    await hub.close();
    expect((await store.load(NOTES)).length).toBeLessThan(12);
    expect(await store.head(NOTES)).toBe(12);
    const expected = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i}`, i]));
    expect(await contentOf(store, NOTES)).toEqual(expected);
  });

  it('never loses an update committed while it compacts', async () => {
    const store = new TestStore();
    const { hub } = makeHub(store, { compactAfter: 3 });
    const gate = deferred();
    store.compactGate = gate.promise;
    for (let i = 0; i < 3; i++)
      await hub.transact(NOTES, (doc) => doc.getMap('data').set(`k${i}`, i), RUNTIME_ORIGIN);
    // Compaction has read the log and now waits; these land after what it read.
    for (let i = 3; i < 6; i++)
      await hub.transact(NOTES, (doc) => doc.getMap('data').set(`k${i}`, i), RUNTIME_ORIGIN);
    gate.resolve();
    await hub.close();
    const expected = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`k${i}`, i]));
    expect(await contentOf(store, NOTES)).toEqual(expected);
    expect((await store.load(NOTES)).length).toBeLessThan(6);
  });

  it('compacts a log that grew by a quarter of its bytes before it has compactAfter entries', async () => {
    // Rows that each hold a socket's many keystrokes reach compactAfter only after a long tail.
    const { hub, store } = makeHub(new TestStore(), { compactAfter: 500 });
    const chunk = 'y'.repeat(6_000);
    for (let i = 0; i < 3; i++)
      await hub.transact(NOTES, (doc) => doc.getText('t').insert(0, chunk), RUNTIME_ORIGIN);
    await hub.close();
    expect(await store.load(NOTES)).toHaveLength(1);
    const doc = new Y.Doc();
    for (const e of await store.load(NOTES)) Y.applyUpdate(doc, e.data);
    expect(doc.getText('t').length).toBe(18_000);
  });

  it('compacts deleted content away', async () => {
    const { hub, store } = makeHub(new TestStore(), { compactAfter: 4 });
    const big = 'x'.repeat(10_000);
    await hub.transact(NOTES, (doc) => doc.getText('t').insert(0, big), RUNTIME_ORIGIN);
    await hub.transact(NOTES, (doc) => doc.getText('t').delete(0, big.length), RUNTIME_ORIGIN);
    await hub.transact(NOTES, (doc) => doc.getText('t').insert(0, 'small'), RUNTIME_ORIGIN);
    await hub.transact(NOTES, (doc) => doc.getText('t').insert(0, '!'), RUNTIME_ORIGIN);
    await hub.close();
    const entries: StoredEntry[] = await store.load(NOTES);
    expect(entries).toHaveLength(1);
    expect(entries[0]?.data.length).toBeLessThan(1000);
  });
});

describe('DocHub reads and holds of a held document (served at once)', () => {
  it('answers from the held copy what every write applied so far left', async () => {
    const { hub } = makeHub();
    const hold = await hub.hold(NOTES, 'plaintext');
    await hub.applyUpdate(NOTES, updateSetting('a', 1), SOCKET);
    const second = await hub.hold(NOTES, 'plaintext');
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({ a: 1 });
    await expect(
      hub.read(NOTES, () => {
        throw new SyncError('InvalidMessage', 'malformed state vector');
      }),
    ).rejects.toMatchObject({ kind: 'InvalidMessage' });
    hold.release();
    second.release();
  });

  it('reads a held copy that went stale from the store again, never the stale copy', async () => {
    const { hub } = makeHub();
    const hold = await hub.hold(NOTES, 'plaintext');
    await hub.applyUpdate(NOTES, updateSetting('kept', 1), SOCKET);
    // A change behind the store's back: the copy no longer matches its log.
    await hub.read(NOTES, (doc) => doc.getMap('data').set('sneaked', true));
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({ kept: 1 });
    hold.release();
  });

  it('makes a read or hold that arrives during a removal wait for it and see the document that follows', async () => {
    const { hub } = makeHub();
    const hold = await hub.hold(NOTES, 'plaintext');
    await hub.applyUpdate(NOTES, updateSetting('a', 1), SOCKET);
    const removed = hub.remove(NOTES);
    const read = hub.read(NOTES, (doc) => doc.getMap('data').toJSON());
    const holding = hub.hold(NOTES, 'plaintext');
    await removed;
    expect(await read).toEqual({});
    (await holding).release();
    hold.release();
  });

  it('refuses reads and holds once closing, even of a held document', async () => {
    const { hub } = makeHub();
    await hub.hold(NOTES, 'plaintext');
    const closing = hub.close();
    const read = hub.read(NOTES, () => 1);
    const hold = hub.hold(NOTES, 'plaintext');
    await expect(read).rejects.toMatchObject({ kind: 'Unavailable' });
    await expect(hold).rejects.toMatchObject({ kind: 'Unavailable' });
    await closing;
  });
});

describe("DocHub live update of a held document (in the caller's turn)", () => {
  it('applies, announces and queues the commit before it returns; acks after the commit', async () => {
    const { hub, store, events } = makeHub();
    const hold = await hub.hold(NOTES, 'plaintext');
    const gate = deferred();
    store.gate = gate.promise;
    const update = updateSetting('a', 1);
    const pending = hub.enqueueHeldUpdate(NOTES, update, SOCKET);
    // Nothing awaited: readers have it now, and the document holds it.
    expect(pending).not.toBeNull();
    expect(events).toEqual([{ type: 'doc-updated', name: NOTES, update, seq: null, origin: SOCKET }]);
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({ a: 1 });
    let acked = false;
    const committed = pending?.committed.then(() => {
      acked = true;
    });
    await vi.waitFor(() => expect(store.batches).toHaveLength(1));
    expect(acked).toBe(false);
    gate.resolve();
    await committed;
    expect(await store.head(NOTES)).toBe(1);
    hold.release();
  });

  it('does nothing and answers null for a document nobody holds ready, or once closing', async () => {
    const { hub, store, events } = makeHub();
    expect(hub.enqueueHeldUpdate(NOTES, updateSetting('a', 1), SOCKET)).toBeNull();
    const hold = await hub.hold(NOTES, 'plaintext');
    // Gone stale (a change behind the store's back): not ready, so the caller takes the slow path.
    await hub.read(NOTES, (doc) => doc.getMap('data').set('sneaked', true));
    expect(hub.enqueueHeldUpdate(NOTES, updateSetting('b', 1), SOCKET)).toBeNull();
    await hub.read(NOTES, () => undefined);
    const closing = hub.close();
    expect(hub.enqueueHeldUpdate(NOTES, updateSetting('c', 1), SOCKET)).toBeNull();
    await closing;
    expect(events).toEqual([]);
    expect(store.batches).toEqual([]);
    hold.release();
  });

  it('refuses a malformed update, and one past the size bound, before it touches anything', async () => {
    const { hub, store, events } = makeHub(new TestStore(), { maxDocBytes: () => 100 });
    const hold = await hub.hold(NOTES, 'plaintext');
    expect(() => hub.enqueueHeldUpdate(NOTES, new Uint8Array([1, 2, 3, 4]), SOCKET)).toThrow(
      expect.objectContaining({ kind: 'InvalidMessage' }),
    );
    expect(() => hub.enqueueHeldUpdate(NOTES, updateSetting('big', 'x'.repeat(200)), SOCKET)).toThrow(
      expect.objectContaining({ kind: 'TooLarge' }),
    );
    expect(events).toEqual([]);
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({});
    await hub.flush();
    expect(store.batches).toEqual([]);
    hold.release();
  });
});

describe('DocHub remove', () => {
  it('removes the document from memory and store, even while held', async () => {
    const { hub, store } = makeHub();
    await hub.transact(NOTES, (doc) => doc.getMap('data').set('a', 1), RUNTIME_ORIGIN);
    const hold = await hub.hold(NOTES, 'plaintext');
    await hub.remove(NOTES);
    expect(hub.openDocs).toBe(0);
    hold.release();
    expect(await store.load(NOTES)).toEqual([]);
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({});
    // Sequence numbers are never reused, so the relay's version keeps increasing.
    expect(await hub.transact(NOTES, (doc) => doc.getMap('data').set('b', 1), RUNTIME_ORIGIN)).toEqual({
      seq: 2,
    });
  });

  it('commits pending writes before removing', async () => {
    const { hub, store } = makeHub();
    const write = hub.applyUpdate(NOTES, updateSetting('a', 1), RUNTIME_ORIGIN);
    await hub.remove(NOTES);
    expect(await write).toEqual({ seq: 1 });
    expect(await store.load(NOTES)).toEqual([]);
  });
});

describe('DocHub encrypted channel', () => {
  const envelope = (n: number): Uint8Array => new Uint8Array([9, n, n, n]);

  it('appends envelopes with relay-assigned seqs and fetches them', async () => {
    const { hub } = makeHub();
    expect(await hub.appendEncrypted(PRIVATE, envelope(1), { origin: RUNTIME_ORIGIN })).toEqual({ seq: 1 });
    expect(await hub.appendEncrypted(PRIVATE, envelope(2), { origin: RUNTIME_ORIGIN })).toEqual({ seq: 2 });
    expect(await hub.fetchEncrypted(PRIVATE, 0)).toEqual({
      headSeq: 2,
      entries: [
        { seq: 1, envelope: envelope(1) },
        { seq: 2, envelope: envelope(2) },
      ],
    });
    expect(await hub.fetchEncrypted(PRIVATE, 1)).toMatchObject({ headSeq: 2, entries: [{ seq: 2 }] });
    const page = await hub.fetchEncrypted(PRIVATE, 0, { maxEntries: 1 });
    expect(page.entries.map((e) => e.seq)).toEqual([1]);
    expect(page.headSeq).toBe(2);
  });

  it('announces envelopes only once committed, with their seq and origin', async () => {
    const { hub, store, events } = makeHub();
    const gate = deferred();
    store.gate = gate.promise;
    const first = hub.appendEncrypted(BLOB, envelope(1), { origin: SOCKET });
    await vi.waitFor(() => expect(store.batches).toHaveLength(1));
    expect(events).toEqual([]);
    gate.resolve();
    await first;
    store.gate = null;
    await hub.appendEncrypted(BLOB, envelope(2), { origin: RUNTIME_ORIGIN });
    expect(events).toEqual([
      { type: 'envelope-appended', name: BLOB, entry: { seq: 1, envelope: envelope(1) }, origin: SOCKET },
      {
        type: 'envelope-appended',
        name: BLOB,
        entry: { seq: 2, envelope: envelope(2) },
        origin: RUNTIME_ORIGIN,
      },
    ]);
  });

  it('announces nothing for an envelope whose commit failed', async () => {
    const { hub, store, events } = makeHub();
    store.failNext = new Error('disk full');
    await expect(hub.appendEncrypted(BLOB, envelope(1), { origin: SOCKET })).rejects.toMatchObject({
      kind: 'Unavailable',
    });
    expect(events).toEqual([]);
  });

  it('replaces entries by a client snapshot', async () => {
    const { hub } = makeHub();
    for (let i = 1; i <= 3; i++) await hub.appendEncrypted(PRIVATE, envelope(i), { origin: RUNTIME_ORIGIN });
    await hub.snapshotEncrypted(PRIVATE, 2, envelope(7), { origin: RUNTIME_ORIGIN });
    expect(await hub.fetchEncrypted(PRIVATE, 0)).toEqual({
      headSeq: 3,
      entries: [
        { seq: 2, envelope: envelope(7) },
        { seq: 3, envelope: envelope(3) },
      ],
    });
    await expect(
      hub.snapshotEncrypted(PRIVATE, 1, envelope(8), { origin: RUNTIME_ORIGIN }),
    ).rejects.toMatchObject({ kind: 'Conflict' });
  });

  it('checks sizes and runs the verification hook before storing', async () => {
    const verify = vi.fn(async (_name: DocName, _caller: unknown, bytes: Uint8Array) => {
      if (bytes[0] !== 9) throw new SyncError('Forbidden', 'bad signature');
    });
    const { hub, store } = makeHub(new TestStore(), { maxEnvelopeBytes: 8, verifyEnvelope: verify });
    await expect(
      hub.appendEncrypted(PRIVATE, new Uint8Array(9).fill(9), { origin: RUNTIME_ORIGIN }),
    ).rejects.toMatchObject({
      kind: 'TooLarge',
    });
    await expect(
      hub.appendEncrypted(PRIVATE, new Uint8Array(0), { origin: RUNTIME_ORIGIN }),
    ).rejects.toMatchObject({
      kind: 'InvalidMessage',
    });
    await expect(
      hub.appendEncrypted(PRIVATE, new Uint8Array([1, 2]), { origin: RUNTIME_ORIGIN }),
    ).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    expect(store.batches).toHaveLength(0);
    const caller = { kind: 'guest' } as const;
    expect(await hub.appendEncrypted(PRIVATE, envelope(1), { caller, origin: RUNTIME_ORIGIN })).toEqual({
      seq: 1,
    });
    expect(verify).toHaveBeenLastCalledWith(PRIVATE, caller, envelope(1));
  });

  it('keeps the plaintext and encrypted channels of a blob apart', async () => {
    const { hub } = makeHub();
    await hub.appendEncrypted(BLOB, envelope(1), { origin: RUNTIME_ORIGIN });
    await expect(hub.read(BLOB, () => undefined)).rejects.toMatchObject({ kind: 'Conflict' });
    await expect(
      hub.appendEncrypted(parseDocName('PUBLIC_RW/_/x').name, envelope(1), { origin: RUNTIME_ORIGIN }),
    ).rejects.toMatchObject({
      kind: 'BadRequest',
    });
  });
});

describe('DocHub size bound', () => {
  const text = (doc: Y.Doc, s: string): Uint8Array => {
    const before = Y.encodeStateVector(doc);
    doc.getText('t').insert(doc.getText('t').length, s);
    return Y.encodeStateAsUpdate(doc, before);
  };

  it('refuses a write that would grow a document past the bound of its scope, with TooLarge', async () => {
    const { hub, store } = makeHub(new TestStore(), {
      maxDocBytes: (name) => (name === NOTES ? 300 : 10_000),
    });
    const client = new Y.Doc();
    const first = text(client, 'a'.repeat(150));
    await hub.applyUpdate(NOTES, first, RUNTIME_ORIGIN);
    const refused = await hub
      .applyUpdate(NOTES, text(client, 'b'.repeat(200)), RUNTIME_ORIGIN)
      .catch((e) => e);
    expect(refused).toBeInstanceOf(SyncError);
    expect((refused as SyncError).kind).toBe('TooLarge');
    // What the document already holds still passes (a reconnecting client's SyncStep2).
    await hub.applyUpdate(NOTES, first, RUNTIME_ORIGIN);
    const viaTransact = await hub
      .transact(NOTES, (doc) => doc.getText('t').insert(0, 'c'.repeat(200)), RUNTIME_ORIGIN)
      .catch((e) => e);
    expect((viaTransact as SyncError).kind).toBe('TooLarge');
    expect(await hub.read(NOTES, (doc) => doc.getText('t').toString())).toBe('a'.repeat(150));
    expect(await store.head(NOTES)).toBe(1);
    // Another scope's bound is its own.
    await hub.applyUpdate(OTHER, text(new Y.Doc(), 'd'.repeat(500)), RUNTIME_ORIGIN);
  });

  it("asks for a document's bound once, not on every write", async () => {
    const asked: DocName[] = [];
    const { hub } = makeHub(new TestStore(), {
      maxDocBytes: (name) => {
        asked.push(name);
        return 10_000;
      },
    });
    const client = new Y.Doc();
    const hold = await hub.hold(NOTES, 'plaintext');
    for (let i = 0; i < 5; i++) await hub.applyUpdate(NOTES, text(client, 'a'), RUNTIME_ORIGIN);
    hub.enqueueHeldUpdate(NOTES, text(client, 'b'), RUNTIME_ORIGIN);
    await hub.applyUpdate(OTHER, text(new Y.Doc(), 'c'), RUNTIME_ORIGIN);
    expect(asked).toEqual([NOTES, OTHER]);
    hold.release();
  });
});
