import type { StoredEntry } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { applyLog, cutPage, docFromLog, validateUpdate } from './yjs-log.ts';

function logOf(...values: string[]): StoredEntry[] {
  const doc = new Y.Doc();
  return values.map((value, i) => {
    const before = Y.encodeStateVector(doc);
    doc.getText('t').insert(doc.getText('t').length, value);
    return { seq: i + 1, data: Y.encodeStateAsUpdate(doc, before) };
  });
}

const entry = (seq: number, bytes: number): StoredEntry => ({ seq, data: new Uint8Array(bytes) });

describe('yjs-log', () => {
  it('refuses what does not decode as a Yjs update', () => {
    expect(() => validateUpdate(new Uint8Array([0]))).toThrow(
      expect.objectContaining({ kind: 'InvalidMessage' }),
    );
    expect(() => validateUpdate(new Uint8Array([200, 200, 200]))).toThrow(
      expect.objectContaining({ kind: 'InvalidMessage' }),
    );
    expect(() => validateUpdate(logOf('a')[0]?.data as Uint8Array)).not.toThrow();
  });

  it('applies a log, skipping entries that are not Yjs updates', () => {
    const log = logOf('a', 'b');
    const doc = new Y.Doc();
    const garbage = { seq: 9, data: new Uint8Array([200, 200, 200]) };
    expect(applyLog(doc, [log[0] as StoredEntry, garbage, log[1] as StoredEntry])).toBe(1);
    expect(doc.getText('t').toString()).toBe('ab');
  });

  it('builds a doc from a log, leaving out an entry that breaks half-way through its apply', () => {
    const log = logOf('a', 'b');
    const other = new Y.Doc();
    other.getText('t').insert(0, 'zz');
    const whole = Y.encodeStateAsUpdate(other);
    // Its structs read and integrate; its delete set is cut off, so the apply throws after them.
    const broken = { seq: 9, data: whole.slice(0, whole.length - 1) };
    const { doc, skipped } = docFromLog([log[0] as StoredEntry, broken, log[1] as StoredEntry], (d) =>
      d.getText('u').insert(0, 'more'),
    );
    expect(skipped).toBe(1);
    expect(doc.getText('t').toString()).toBe('ab');
    expect(doc.getText('u').toString()).toBe('more');
    const clean = docFromLog(log);
    expect([clean.skipped, clean.doc.getText('t').toString()]).toEqual([0, 'ab']);
  });

  it('cuts a page by bytes and entries, but never below one entry', () => {
    const log = [entry(1, 10), entry(2, 10), entry(3, 10)];
    expect(cutPage(log, 25, undefined).map((e) => e.seq)).toEqual([1, 2]);
    expect(cutPage(log, Number.POSITIVE_INFINITY, 1).map((e) => e.seq)).toEqual([1]);
    expect(cutPage(log, 5, undefined).map((e) => e.seq)).toEqual([1]);
    expect(cutPage(log, 100, undefined)).toBe(log);
    expect(cutPage([], 5, 1)).toEqual([]);
  });
});
