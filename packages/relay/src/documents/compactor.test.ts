import { MemoryDocStore, parseDocName } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { Metrics } from '../metrics.ts';
import { Compactor } from './compactor.ts';
import { DocRegistry } from './doc-registry.ts';
import { MergeThread } from './merge-thread.ts';

const NOTES = parseDocName('PUBLIC_RW/_/notes').name;

describe('Compactor', () => {
  it('compacts a due log once, keeping entries appended while it ran', async () => {
    const store = new MemoryDocStore();
    const doc = new Y.Doc();
    const append = async (value: string): Promise<void> => {
      const before = Y.encodeStateVector(doc);
      doc.getText('t').insert(doc.getText('t').length, value);
      await store.appendBatch([{ doc: NOTES, data: Y.encodeStateAsUpdate(doc, before) }]);
    };
    for (const v of ['a', 'b', 'c']) await append(v);
    const log = (): undefined => undefined;
    const registry = new DocRegistry({
      store,
      log,
      idleMs: 60_000,
      compactAfter: 3,
      openDocs: new Metrics().gauge('g', 'g'),
    });
    const entry = await registry.acquire(NOTES, 'plaintext');
    registry.release(entry);
    const settled: string[] = [];
    const merges = new MergeThread();
    const compactor = new Compactor({
      store,
      metrics: new Metrics(),
      log,
      compactAfter: 3,
      settled: (e) => settled.push(e.name),
      merge: (updates) => merges.merge(updates),
    });

    entry.logEntries = entry.compactAt - 1; // not due yet
    compactor.consider(entry);
    expect(entry.compaction).toBeNull();

    entry.logEntries = entry.compactAt;
    compactor.consider(entry);
    const running = entry.compaction;
    expect(running).not.toBeNull();
    compactor.consider(entry); // already running: not started twice
    expect(entry.compaction).toBe(running);
    await append('d'); // lands after what the compaction read, or before it: either way it stays
    await compactor.close();

    expect(settled).toEqual([NOTES]);
    expect(entry.compaction).toBeNull();
    const loaded = new Y.Doc();
    const stored = await store.load(NOTES);
    for (const e of stored) Y.applyUpdate(loaded, e.data);
    expect(loaded.getText('t').toString()).toBe('abcd');
    expect(stored.length).toBeLessThan(4);
    registry.close();
    await merges.close();
  });
});
