import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { parseUserValue, readUserValue, writeUserValue } from './userdata-value.ts';

describe('userdata values', () => {
  it('keeps top-level fields in Y.Map("data") and replaces the whole object', () => {
    const doc = new Y.Doc();
    doc.transact(() => writeUserValue(doc, { theme: 'dark', n: 1, nested: { a: [1, 2] } }));
    expect(doc.getMap('data').get('theme')).toBe('dark');
    expect(readUserValue(doc)).toEqual({ theme: 'dark', n: 1, nested: { a: [1, 2] } });
    doc.transact(() => writeUserValue(doc, { n: 2 }));
    expect(readUserValue(doc)).toEqual({ n: 2 });
  });

  it('produces no update when the value is unchanged', () => {
    const doc = new Y.Doc();
    writeUserValue(doc, { a: 1, b: { c: true } });
    let updates = 0;
    doc.on('update', () => updates++);
    doc.transact(() => writeUserValue(doc, { a: 1, b: { c: true } }));
    expect(updates).toBe(0);
  });

  it('keeps a field named __proto__ as a field', () => {
    const doc = new Y.Doc();
    const value = JSON.parse('{"__proto__": {"x": 1}, "y": 2}') as Record<string, unknown>;
    writeUserValue(doc, value);
    const read = readUserValue(doc);
    expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
    expect(JSON.stringify(read)).toBe('{"__proto__":{"x":1},"y":2}');
  });

  it('accepts only JSON objects', () => {
    for (const bad of [null, [], 'x', 3, true]) expect(() => parseUserValue(bad)).toThrow(/JSON object/);
    expect(parseUserValue({})).toEqual({});
  });
});
