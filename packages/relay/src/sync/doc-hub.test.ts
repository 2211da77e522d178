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
import { Metrics } from '../metrics.ts';
import { DocHub, type DocHubOptions } from './doc-hub.ts';
import type { SyncLog } from './sync-log.ts';

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
): { hub: DocHub; store: TestStore; logs: unknown[][] } {
  const logs: unknown[][] = [];
  const log: SyncLog = (...args) => {
    logs.push(args);
  };
  const hub = new DocHub({ store, metrics: new Metrics(), log, ...options });
  hubs.push(hub);
  return { hub, store, logs };
}

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
      .transact(NOTES, (doc) => doc.getMap('data').set('title', 'hello'))
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
    await hub.transact(NOTES, (doc) => doc.getMap('data').set('a', 1));
    const result = await hub.transact(NOTES, () => undefined);
    expect(result).toEqual({ seq: 1 });
    expect(store.batches).toHaveLength(1);
  });

  it('discards the changes of a transaction that throws', async () => {
    const { hub, store } = makeHub();
    await hub.transact(NOTES, (doc) => doc.getMap('data').set('a', 1));
    await expect(
      hub.transact(NOTES, (doc) => {
        doc.getMap('data').set('b', 2);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({ a: 1 });
    expect(await contentOf(store, NOTES)).toEqual({ a: 1 });
  });

  it('refuses a malformed update before it touches the store or the document', async () => {
    const { hub, store } = makeHub();
    await hub.applyUpdate(NOTES, updateSetting('a', 1));
    for (const garbage of [
      new Uint8Array([1, 2, 3, 4, 5, 250, 251]),
      new Uint8Array([0]),
      new Uint8Array([200, 200, 200]),
    ]) {
      await expect(hub.applyUpdate(NOTES, garbage)).rejects.toMatchObject({ kind: 'InvalidMessage' });
    }
    expect(store.batches).toHaveLength(1);
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({ a: 1 });
  });

  it('acks a duplicate update without storing it again', async () => {
    const { hub, store } = makeHub();
    const update = updateSetting('a', 1);
    expect(await hub.applyUpdate(NOTES, update)).toEqual({ seq: 1 });
    expect(await hub.applyUpdate(NOTES, update)).toEqual({ seq: 1 });
    expect(await store.load(NOTES)).toHaveLength(1);
  });

  it('does not ack a duplicate before the original is committed', async () => {
    const { hub, store } = makeHub();
    const gate = deferred();
    store.gate = gate.promise;
    const update = updateSetting('a', 1);
    const first = hub.applyUpdate(NOTES, update);
    let duplicateAcked = false;
    const second = hub.applyUpdate(NOTES, update).then((r) => {
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
    expect(await hub.applyUpdate(NOTES, second)).toEqual({ seq: 1 });
    expect(await store.load(NOTES)).toHaveLength(1);
  });

  it('commits the writes of one tick, across documents, in one batch', async () => {
    const { hub, store } = makeHub();
    // Load both documents first so that the writes below reach the queue in the same tick.
    await hub.read(NOTES, () => undefined);
    await hub.read(OTHER, () => undefined);
    const results = await Promise.all([
      hub.applyUpdate(NOTES, updateSetting('a', 1)),
      hub.applyUpdate(OTHER, updateSetting('b', 2)),
      hub.transact(NOTES, (doc) => doc.getMap('data').set('c', 3)),
    ]);
    expect(store.batches).toHaveLength(1);
    expect(store.batches[0]?.map((i) => i.doc)).toEqual([NOTES, OTHER, NOTES]);
    expect(results).toEqual([{ seq: 1 }, { seq: 1 }, { seq: 2 }]);
  });

  it('rejects the writers of a failed commit, keeps serving, and does not remember what failed', async () => {
    const { hub, store, logs } = makeHub();
    await hub.applyUpdate(NOTES, updateSetting('a', 1));
    store.failNext = new Error('disk full');
    const lost = updateSetting('b', 2);
    await expect(hub.applyUpdate(NOTES, lost)).rejects.toBeInstanceOf(SyncError);
    expect(logs.some(([level]) => level === 'error')).toBe(true);
    // The failed update is not in the relay's document any more, so sending it again stores it.
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({ a: 1 });
    expect(await hub.applyUpdate(NOTES, lost)).toEqual({ seq: 2 });
    expect(await contentOf(store, NOTES)).toEqual({ a: 1, b: 2 });
  });

  it('delivers updates to subscribers at once, with their origin, and acks only after the commit', async () => {
    const { hub, store } = makeHub();
    const seen: Array<{ update: Uint8Array; origin: unknown }> = [];
    const sub = await hub.subscribe(NOTES, 'plaintext', {
      update: (update, origin) => seen.push({ update, origin }),
    });
    const gate = deferred();
    store.gate = gate.promise;
    let acked = false;
    const write = hub.applyUpdate(NOTES, updateSetting('a', 1), 'socket-1').then(() => {
      acked = true;
    });
    await vi.waitFor(() => expect(store.batches).toHaveLength(1));
    // Readers have it while the store is still committing; the writer has no ack yet.
    expect(seen).toHaveLength(1);
    expect(seen[0]?.origin).toBe('socket-1');
    expect(acked).toBe(false);
    gate.resolve();
    await write;
    expect(acked).toBe(true);
    expect(seen).toHaveLength(1);
    sub.close();
    sub.close();
  });

  it('reloads an evicted document from the store', async () => {
    const { hub, store } = makeHub(new TestStore(), { idleMs: 1 });
    await hub.transact(NOTES, (doc) => doc.getMap('data').set('a', 1));
    await vi.waitFor(() => expect(hub.openDocs).toBe(0));
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({ a: 1 });
    expect(await store.load(NOTES)).toHaveLength(1);
  });

  it('keeps a subscribed document in memory', async () => {
    const { hub } = makeHub(new TestStore(), { idleMs: 1 });
    const sub = await hub.subscribe(NOTES, 'plaintext', {});
    await new Promise((r) => setTimeout(r, 20));
    expect(hub.openDocs).toBe(1);
    sub.close();
    await vi.waitFor(() => expect(hub.openDocs).toBe(0));
  });

  it('refuses plaintext access to USER_PRIVATE documents', async () => {
    const { hub } = makeHub();
    await expect(hub.applyUpdate(PRIVATE, updateSetting('a', 1))).rejects.toMatchObject({
      kind: 'BadRequest',
    });
    await expect(hub.subscribe(PRIVATE, 'plaintext', {})).rejects.toMatchObject({ kind: 'BadRequest' });
  });

  it('close() commits what is pending and is idempotent', async () => {
    const { hub, store } = makeHub();
    const write = hub.applyUpdate(NOTES, updateSetting('a', 1));
    await Promise.all([hub.close(), hub.close()]);
    expect(await write).toEqual({ seq: 1 });
    expect(await store.load(NOTES)).toHaveLength(1);
    await expect(hub.applyUpdate(NOTES, updateSetting('b', 1))).rejects.toMatchObject({
      kind: 'Unavailable',
    });
  });
});

describe('DocHub compaction', () => {
  it('merges the log after compactAfter entries without losing content', async () => {
    const { hub, store } = makeHub(new TestStore(), { compactAfter: 5 });
    for (let i = 0; i < 12; i++) await hub.transact(NOTES, (doc) => doc.getMap('data').set(`k${i}`, i));
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
    for (let i = 0; i < 3; i++) await hub.transact(NOTES, (doc) => doc.getMap('data').set(`k${i}`, i));
    // Compaction has read the log and now waits; these land after what it read.
    for (let i = 3; i < 6; i++) await hub.transact(NOTES, (doc) => doc.getMap('data').set(`k${i}`, i));
    gate.resolve();
    await hub.close();
    const expected = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`k${i}`, i]));
    expect(await contentOf(store, NOTES)).toEqual(expected);
    expect((await store.load(NOTES)).length).toBeLessThan(6);
  });

  it('compacts deleted content away', async () => {
    const { hub, store } = makeHub(new TestStore(), { compactAfter: 4 });
    const big = 'x'.repeat(10_000);
    await hub.transact(NOTES, (doc) => doc.getText('t').insert(0, big));
    await hub.transact(NOTES, (doc) => doc.getText('t').delete(0, big.length));
    await hub.transact(NOTES, (doc) => doc.getText('t').insert(0, 'small'));
    await hub.transact(NOTES, (doc) => doc.getText('t').insert(0, '!'));
    await hub.close();
    const entries: StoredEntry[] = await store.load(NOTES);
    expect(entries).toHaveLength(1);
    expect(entries[0]?.data.length).toBeLessThan(1000);
  });
});

describe('DocHub remove', () => {
  it('removes the document from memory and store and tells subscribers', async () => {
    const { hub, store } = makeHub();
    await hub.transact(NOTES, (doc) => doc.getMap('data').set('a', 1));
    const removed = vi.fn();
    await hub.subscribe(NOTES, 'plaintext', { removed });
    await hub.remove(NOTES);
    expect(removed).toHaveBeenCalledTimes(1);
    expect(await store.load(NOTES)).toEqual([]);
    expect(await hub.read(NOTES, (doc) => doc.getMap('data').toJSON())).toEqual({});
    // Sequence numbers are never reused, so the relay's version keeps increasing.
    expect(await hub.transact(NOTES, (doc) => doc.getMap('data').set('b', 1))).toEqual({ seq: 2 });
  });

  it('commits pending writes before removing', async () => {
    const { hub, store } = makeHub();
    const write = hub.applyUpdate(NOTES, updateSetting('a', 1));
    await hub.remove(NOTES);
    expect(await write).toEqual({ seq: 1 });
    expect(await store.load(NOTES)).toEqual([]);
  });
});

describe('DocHub encrypted channel', () => {
  const envelope = (n: number): Uint8Array => new Uint8Array([9, n, n, n]);

  it('appends envelopes with relay-assigned seqs and fetches them', async () => {
    const { hub } = makeHub();
    expect(await hub.appendEncrypted(PRIVATE, envelope(1))).toEqual({ seq: 1 });
    expect(await hub.appendEncrypted(PRIVATE, envelope(2))).toEqual({ seq: 2 });
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

  it('pushes committed envelopes to encrypted subscribers', async () => {
    const { hub } = makeHub();
    const seen: number[] = [];
    await hub.subscribe(BLOB, 'encrypted', { encrypted: (entry) => seen.push(entry.seq) });
    await hub.appendEncrypted(BLOB, envelope(1));
    await hub.appendEncrypted(BLOB, envelope(2));
    expect(seen).toEqual([1, 2]);
  });

  it('replaces entries by a client snapshot', async () => {
    const { hub } = makeHub();
    for (let i = 1; i <= 3; i++) await hub.appendEncrypted(PRIVATE, envelope(i));
    await hub.snapshotEncrypted(PRIVATE, 2, envelope(7));
    expect(await hub.fetchEncrypted(PRIVATE, 0)).toEqual({
      headSeq: 3,
      entries: [
        { seq: 2, envelope: envelope(7) },
        { seq: 3, envelope: envelope(3) },
      ],
    });
    await expect(hub.snapshotEncrypted(PRIVATE, 1, envelope(8))).rejects.toMatchObject({ kind: 'Conflict' });
  });

  it('checks sizes and runs the verification hook before storing', async () => {
    const verify = vi.fn(async (_name: DocName, _caller: unknown, bytes: Uint8Array) => {
      if (bytes[0] !== 9) throw new SyncError('Forbidden', 'bad signature');
    });
    const { hub, store } = makeHub(new TestStore(), { maxEnvelopeBytes: 8, verifyEnvelope: verify });
    await expect(hub.appendEncrypted(PRIVATE, new Uint8Array(9).fill(9))).rejects.toMatchObject({
      kind: 'TooLarge',
    });
    await expect(hub.appendEncrypted(PRIVATE, new Uint8Array(0))).rejects.toMatchObject({
      kind: 'InvalidMessage',
    });
    await expect(hub.appendEncrypted(PRIVATE, new Uint8Array([1, 2]))).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    expect(store.batches).toHaveLength(0);
    const caller = { kind: 'guest' } as const;
    expect(await hub.appendEncrypted(PRIVATE, envelope(1), { caller })).toEqual({ seq: 1 });
    expect(verify).toHaveBeenLastCalledWith(PRIVATE, caller, envelope(1));
  });

  it('keeps the plaintext and encrypted channels of a blob apart', async () => {
    const { hub } = makeHub();
    await hub.appendEncrypted(BLOB, envelope(1));
    await expect(hub.read(BLOB, () => undefined)).rejects.toMatchObject({ kind: 'Conflict' });
    await expect(hub.appendEncrypted(parseDocName('PUBLIC_RW/_/x').name, envelope(1))).rejects.toMatchObject({
      kind: 'BadRequest',
    });
  });
});
