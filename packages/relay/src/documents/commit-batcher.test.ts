import { type AppendItem, type DocName, MemoryDocStore, parseDocName, SyncError } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { Metrics } from '../metrics.ts';
import { CommitBatcher } from './commit-batcher.ts';
import { type DocEntry, DocRegistry } from './doc-registry.ts';

const A = parseDocName('PUBLIC_RW/_/a').name;
const B = parseDocName('PUBLIC_RW/_/b').name;

class CountingStore extends MemoryDocStore {
  batches: AppendItem[][] = [];
  failNext = false;
  failure: unknown = new Error('disk full');
  /** The next batch never settles (a database backend that stopped answering). */
  hangNext = false;
  /** The next batch commits only after this many ms (a backend that answers late). */
  delayNextMs = 0;
  override async appendBatch(items: readonly AppendItem[]): Promise<number[]> {
    this.batches.push([...items]);
    if (this.delayNextMs > 0) {
      const ms = this.delayNextMs;
      this.delayNextMs = 0;
      await new Promise((resolve) => setTimeout(resolve, ms));
    }
    if (this.hangNext) {
      this.hangNext = false;
      return new Promise<number[]>(() => undefined);
    }
    if (this.failNext) {
      this.failNext = false;
      throw this.failure;
    }
    return super.appendBatch(items);
  }
}

function setup(commitTimeoutMs?: number): {
  store: CountingStore;
  batcher: CommitBatcher;
  entry: (name: DocName) => Promise<DocEntry>;
  logs: unknown[];
} {
  const store = new CountingStore();
  const logs: unknown[] = [];
  const log = (...args: unknown[]): void => {
    logs.push(args);
  };
  const registry = new DocRegistry({
    store,
    log,
    idleMs: 60_000,
    compactAfter: 500,
    openDocs: new Metrics().gauge('g', 'g'),
  });
  const batcher = new CommitBatcher({ store, metrics: new Metrics(), log, commitTimeoutMs });
  const entry = async (name: DocName): Promise<DocEntry> => {
    const e = await registry.acquire(name, 'plaintext');
    registry.release(e);
    return e;
  };
  return { store, batcher, entry, logs };
}

const update = (value: string): Uint8Array => {
  const doc = new Y.Doc();
  doc.getText('t').insert(0, value);
  return Y.encodeStateAsUpdate(doc);
};

describe('CommitBatcher', () => {
  it('commits the writes of one tick in one batch, in order, and calls onCommit with each seq', async () => {
    const { store, batcher, entry } = setup();
    const [a, b] = [await entry(A), await entry(B)];
    const seen: number[] = [];
    const results = await Promise.all([
      batcher.enqueue(a, 'plaintext', update('1')),
      batcher.enqueue(b, 'plaintext', update('2'), (seq) => seen.push(seq)),
      batcher.enqueue(a, 'plaintext', update('3'), (seq) => seen.push(seq)),
    ]);
    expect(store.batches).toHaveLength(1);
    expect(results).toEqual([{ seq: 1 }, { seq: 1 }, { seq: 2 }]);
    expect(seen).toEqual([1, 2]);
    expect(a.headSeq).toBe(2);
    expect(a.inflight.size).toBe(0);
  });

  it("stores one writer's consecutive plaintext writes of a document as one row, never envelopes", async () => {
    const { store, batcher, entry } = setup();
    const [a, b] = [await entry(A), await entry(B)];
    const rows: Array<[number, string]> = [];
    const onCommit = (seq: number, stored: Uint8Array): void => {
      const doc = new Y.Doc();
      Y.applyUpdate(doc, stored);
      rows.push([seq, doc.getText('t').toString()]);
    };
    const results = await Promise.all([
      batcher.enqueue(a, 'plaintext', update('1'), onCommit, 7),
      batcher.enqueue(b, 'plaintext', update('2'), onCommit, 7),
      // Another document's write in between does not end the row; a write of another writer does.
      batcher.enqueue(a, 'plaintext', update('3'), onCommit, 7),
      batcher.enqueue(a, 'plaintext', update('4'), onCommit, 8),
      batcher.enqueue(b, 'encrypted', new Uint8Array([1, 2, 3]), undefined, 7),
      batcher.enqueue(b, 'encrypted', new Uint8Array([4, 5, 6]), undefined, 7),
    ]);
    expect(store.batches).toHaveLength(1);
    expect(store.batches[0]?.map((i) => i.doc)).toEqual([A, B, A, B, B]);
    expect(results).toEqual([{ seq: 1 }, { seq: 1 }, { seq: 1 }, { seq: 2 }, { seq: 2 }, { seq: 3 }]);
    // Once per row, with what the row stores: both updates of the joined one.
    expect(rows.map(([seq]) => seq)).toEqual([1, 1, 2]);
    expect(rows[0]?.[1]).toHaveLength(2);
    expect(a.headSeq).toBe(2);
    expect(a.logEntries).toBe(2);
  });

  it('refuses every writer of a failed batch, marks their documents stale and fails no-ops that waited', async () => {
    const { store, batcher, entry, logs } = setup();
    const a = await entry(A);
    store.failNext = true;
    const onCommit = (): void => {
      throw new Error('must not be called');
    };
    const write = batcher.enqueue(a, 'plaintext', update('1'), onCommit);
    const noop = batcher.noop(a);
    await expect(write).rejects.toMatchObject({ kind: 'Unavailable' });
    await expect(noop).rejects.toMatchObject({ kind: 'Unavailable' });
    expect(a.stale).toBe(true);
    expect(a.inflight.size).toBe(0);
    expect(logs).toHaveLength(1);
  });

  it('refuses the writers of a failed batch as Unavailable whatever the store said, so they send again', async () => {
    const { store, batcher, entry } = setup();
    const a = await entry(A);
    store.failNext = true;
    store.failure = new SyncError('Conflict', 'duplicate key value violates unique constraint');
    const write = batcher.enqueue(a, 'plaintext', update('1'));
    // Conflict would make the client drop an edit other readers were already shown.
    await expect(write).rejects.toMatchObject({
      kind: 'Unavailable',
      message: expect.stringContaining('duplicate key'),
    });
  });

  it('answers a no-op with the head once earlier writes committed; flush waits for everything', async () => {
    const { batcher, entry } = setup();
    const a = await entry(A);
    void batcher.enqueue(a, 'plaintext', update('1'));
    expect(await batcher.noop(a)).toEqual({ seq: 1 });
    void batcher.enqueue(a, 'plaintext', update('2'));
    await batcher.flush();
    expect(a.headSeq).toBe(2);
  });

  it('refuses the writers of a batch the store never answers at the deadline, and commits later writes', async () => {
    const { store, batcher, entry } = setup(200);
    const a = await entry(A);
    store.hangNext = true;
    const hung = batcher.enqueue(a, 'plaintext', update('1'));
    // Before the deadline existed this write, and every one after it, waited forever.
    await expect(hung).rejects.toMatchObject({
      kind: 'Unavailable',
      message: expect.stringContaining('200 ms'),
    });
    expect(a.stale).toBe(true);
    expect(await batcher.enqueue(a, 'plaintext', update('2'))).toEqual({ seq: 1 });
    expect(store.batches).toHaveLength(2);
  });

  it('refuses a batch at its deadline and logs it when the store commits it after all', async () => {
    const { store, batcher, entry, logs } = setup(50);
    const a = await entry(A);
    store.delayNextMs = 200;
    await expect(batcher.enqueue(a, 'plaintext', update('1'))).rejects.toMatchObject({ kind: 'Unavailable' });
    expect(a.stale).toBe(true);
    const late = (): boolean => logs.some((l) => String((l as unknown[])[1]).includes('committed later'));
    expect(late()).toBe(false);
    while (!late()) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await store.head(A)).toBe(1);
  });
});
