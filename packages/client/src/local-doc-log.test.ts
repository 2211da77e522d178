import { MemoryDocStore, MemoryKeyValueStore } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { decodeEntry, EntryTag, LocalDocLog, PLAINTEXT_CODEC } from './local-doc-log.ts';

function updateOf(change: (doc: Y.Doc) => void, base?: Y.Doc): Uint8Array {
  const doc = base ?? new Y.Doc();
  const before = Y.encodeStateVector(doc);
  change(doc);
  return Y.encodeStateAsUpdate(doc, before);
}

describe('LocalDocLog', () => {
  it('derives the outbox from the log: local entries leave it when acknowledged', async () => {
    const log = new LocalDocLog(new MemoryDocStore(), new MemoryKeyValueStore(), 'doc', PLAINTEXT_CODEC, 100);
    await log.load();
    const doc = new Y.Doc();
    const a = await log.appendLocal(updateOf((d) => d.getMap('m').set('a', 1), doc));
    await log.appendRemote(updateOf((d) => d.getMap('m').set('r', 1)));
    const b = await log.appendLocal(updateOf((d) => d.getMap('m').set('b', 2), doc));
    expect(log.pendingSeqs()).toEqual([a.seq, b.seq]);
    await log.markAcked([a.seq]);
    expect((await log.loadPending()).map((e) => e.seq)).toEqual([b.seq]);
  });

  it('remembers acknowledgements across a reload', async () => {
    const docs = new MemoryDocStore();
    const kv = new MemoryKeyValueStore();
    const log = new LocalDocLog(docs, kv, 'doc', PLAINTEXT_CODEC, 100);
    await log.load();
    const a = await log.appendLocal(updateOf((d) => d.getMap('m').set('a', 1)));
    await log.appendLocal(updateOf((d) => d.getMap('m').set('b', 1)));
    await log.markAcked([a.seq]);
    const again = new LocalDocLog(docs, kv, 'doc', PLAINTEXT_CODEC, 100);
    await again.load();
    expect(again.pendingCount).toBe(1);
  });

  it('compacts settled entries into a snapshot and keeps pending ones as they are', async () => {
    const docs = new MemoryDocStore();
    const log = new LocalDocLog(docs, new MemoryKeyValueStore(), 'doc', PLAINTEXT_CODEC, 4);
    await log.load();
    const doc = new Y.Doc();
    const seqs: number[] = [];
    for (let i = 0; i < 4; i++)
      seqs.push((await log.appendLocal(updateOf((d) => d.getArray('a').push([i]), doc))).seq);
    await log.markAcked(seqs.slice(0, 3));
    await log.appendLocal(updateOf((d) => d.getArray('a').push([4]), doc));
    await log.compactIfNeeded();
    const stored = (await docs.load('doc')).map((e) => decodeEntry(e.seq, e.data));
    expect(stored.map((e) => e.tag)).toEqual([EntryTag.Snapshot, EntryTag.Local, EntryTag.Local]);
    expect(log.pendingCount).toBe(2);
    const rebuilt = new Y.Doc();
    for (const u of await new LocalDocLog(
      docs,
      new MemoryKeyValueStore(),
      'doc',
      PLAINTEXT_CODEC,
      100,
    ).load())
      Y.applyUpdate(rebuilt, u);
    expect(rebuilt.getArray('a').toArray()).toEqual([0, 1, 2, 3, 4]);
  });

  it('after a load, merges acknowledged edits into one row so the next start reads one, and keeps pending ones', async () => {
    const docs = new MemoryDocStore();
    const kv = new MemoryKeyValueStore();
    const log = new LocalDocLog(docs, kv, 'doc', PLAINTEXT_CODEC, 100);
    await log.load();
    const doc = new Y.Doc();
    const seqs: number[] = [];
    for (let i = 0; i < 20; i++)
      seqs.push((await log.appendLocal(updateOf((d) => d.getArray('a').push([i]), doc))).seq);
    await log.markAcked(seqs.slice(0, 18));
    // Well under the size threshold (100): compactIfNeeded leaves it alone.
    await log.compactIfNeeded();
    expect(await docs.load('doc')).toHaveLength(20);

    const reopened = new LocalDocLog(docs, kv, 'doc', PLAINTEXT_CODEC, 100);
    await reopened.load();
    await reopened.compactSettled();
    const stored = (await docs.load('doc')).map((e) => decodeEntry(e.seq, e.data));
    expect(stored.map((e) => e.tag)).toEqual([EntryTag.Snapshot, EntryTag.Local, EntryTag.Local]);
    expect(reopened.pendingSeqs()).toEqual(seqs.slice(18));
    const rebuilt = new Y.Doc();
    for (const u of await new LocalDocLog(docs, kv, 'doc', PLAINTEXT_CODEC, 100).load())
      Y.applyUpdate(rebuilt, u);
    expect(rebuilt.getArray('a').toArray()).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('leaves a log with few acknowledged edits as it is after a load', async () => {
    const docs = new MemoryDocStore();
    const kv = new MemoryKeyValueStore();
    const log = new LocalDocLog(docs, kv, 'doc', PLAINTEXT_CODEC, 100);
    await log.load();
    const seqs: number[] = [];
    for (let i = 0; i < 5; i++)
      seqs.push((await log.appendLocal(updateOf((d) => d.getMap('m').set(`k${i}`, i)))).seq);
    await log.markAcked(seqs);
    await log.compactSettled();
    expect(await docs.load('doc')).toHaveLength(5);
  });

  it('stores a grant that changes the remembered access, and nothing for one that repeats it', async () => {
    const kv = new MemoryKeyValueStore();
    let writes = 0;
    const put = kv.put.bind(kv);
    kv.put = (async (...args: Parameters<typeof kv.put>) => {
      writes++;
      return put(...args);
    }) as typeof kv.put;
    const docs = new MemoryDocStore();
    const log = new LocalDocLog(docs, kv, 'doc', PLAINTEXT_CODEC, 100);
    await log.load();
    await log.updateMeta({ access: 'read-write', accessReason: '' });
    expect(writes).toBe(1);
    // A reconnect (or the next start of the page): the relay grants the same access again.
    const reopened = new LocalDocLog(docs, kv, 'doc', PLAINTEXT_CODEC, 100);
    await reopened.load();
    await reopened.updateMeta({ access: 'read-write', accessReason: '' });
    expect(writes).toBe(1);
    await reopened.updateMeta({ access: 'read', accessReason: '' });
    expect(writes).toBe(2);
    const again = new LocalDocLog(docs, kv, 'doc', PLAINTEXT_CODEC, 100);
    await again.load();
    expect(again.meta.access).toBe('read');
  });

  it('merges a long offline session into one pending entry that still holds every edit', async () => {
    const docs = new MemoryDocStore();
    const log = new LocalDocLog(docs, new MemoryKeyValueStore(), 'doc', PLAINTEXT_CODEC, 5);
    await log.load();
    const doc = new Y.Doc();
    for (let i = 0; i < 8; i++) await log.appendLocal(updateOf((d) => d.getArray('a').push([i]), doc));
    const result = await log.compactIfNeeded();
    expect(result.pendingMergedThrough).toBe(8);
    expect(log.pendingCount).toBe(1);
    const [pending] = await log.loadPending();
    const rebuilt = new Y.Doc();
    Y.applyUpdate(rebuilt, pending?.payload as Uint8Array);
    expect(rebuilt.getArray('a').toArray()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('reset(dropPending) keeps only what the relay confirmed', async () => {
    const docs = new MemoryDocStore();
    const log = new LocalDocLog(docs, new MemoryKeyValueStore(), 'doc', PLAINTEXT_CODEC, 100);
    await log.load();
    await log.appendRemote(updateOf((d) => d.getMap('m').set('remote', 1)));
    const acked = await log.appendLocal(updateOf((d) => d.getMap('m').set('acked', 1)));
    await log.markAcked([acked.seq]);
    await log.appendLocal(updateOf((d) => d.getMap('m').set('refused', 1)));
    const updates = await log.reset(true);
    const doc = new Y.Doc();
    for (const u of updates) Y.applyUpdate(doc, u);
    expect(doc.getMap('m').toJSON()).toEqual({ remote: 1, acked: 1 });
    expect(log.pendingCount).toBe(0);
    expect(await docs.load('doc')).toHaveLength(1);
  });
});
