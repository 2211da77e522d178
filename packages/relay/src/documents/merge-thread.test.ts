import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { MergeThread } from './merge-thread.ts';
import { docFromLog } from './yjs-log.ts';

/** One update per value, each appended to the text of the one before. */
function logOf(...values: string[]): Uint8Array[] {
  const doc = new Y.Doc();
  return values.map((value) => {
    const before = Y.encodeStateVector(doc);
    doc.getText('t').insert(doc.getText('t').length, value);
    return Y.encodeStateAsUpdate(doc, before);
  });
}

function textOf(update: Uint8Array): string {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, update);
  return doc.getText('t').toString();
}

let thread: MergeThread | null = null;
afterEach(async () => {
  await thread?.close();
  thread = null;
});

describe('MergeThread', () => {
  it('merges a log into one update, the same bytes as a doc built from it on the loop', async () => {
    thread = new MergeThread();
    const log = logOf('x', 'y', 'z');
    const merged = await thread.merge(log);
    expect(textOf(merged.update)).toBe('xyz');
    expect(merged.skipped).toBe(0);
    const { doc } = docFromLog(log.map((data, i) => ({ seq: i + 1, data })));
    expect(merged.update).toEqual(Y.encodeStateAsUpdate(doc));
  });

  it('shrinks deleted content, as a garbage-collecting doc does', async () => {
    thread = new MergeThread();
    const doc = new Y.Doc();
    const log: Uint8Array[] = [];
    doc.on('update', (u: Uint8Array) => log.push(u));
    doc.getText('t').insert(0, 'a'.repeat(5000));
    doc.getText('t').delete(0, 4990);
    const merged = await thread.merge(log);
    expect(textOf(merged.update)).toBe('a'.repeat(10));
    expect(merged.update.byteLength).toBeLessThan(200);
  });

  it('leaves out an entry that breaks half-way through its apply, as a load does', async () => {
    thread = new MergeThread();
    const log = logOf('a', 'b');
    const other = new Y.Doc();
    other.getText('t').insert(0, 'zz');
    const whole = Y.encodeStateAsUpdate(other);
    // Its structs read and integrate; its delete set is cut off, so the apply throws after them.
    const broken = whole.slice(0, whole.length - 1);
    const merged = await thread.merge([
      log[0] as Uint8Array,
      broken,
      new Uint8Array([200, 200]),
      log[1] as Uint8Array,
    ]);
    expect(merged.skipped).toBe(2);
    expect(textOf(merged.update)).toBe('ab');
  });

  it('answers merges given together, each with its own log', async () => {
    thread = new MergeThread();
    const values = Array.from({ length: 20 }, (_, i) => `v${i}-`);
    const merged = await Promise.all(values.map((v) => thread!.merge(logOf(v, v))));
    expect(merged.map((m) => textOf(m.update))).toEqual(values.map((v) => v + v));
  });

  it('starts again after stopping for being idle', async () => {
    thread = new MergeThread({ idleMs: 10 });
    expect(textOf((await thread.merge(logOf('a'))).update)).toBe('a');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(textOf((await thread.merge(logOf('b', 'c'))).update)).toBe('bc');
  });

  it('refuses merges under way and after it is closed with Unavailable', async () => {
    thread = new MergeThread();
    const big = logOf(...Array.from({ length: 3000 }, (_, i) => `${i},`));
    const underWay = expect(thread.merge(big)).rejects.toMatchObject({ kind: 'Unavailable' });
    await thread.close();
    await underWay;
    await expect(thread.merge(logOf('a'))).rejects.toMatchObject({ kind: 'Unavailable' });
  });
});
