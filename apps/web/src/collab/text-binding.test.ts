import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { diff, transformIndex } from './text-binding.ts';

describe('diff', () => {
  it('finds the one replacement between two strings', () => {
    expect(diff('hello world', 'hello brave world')).toEqual({ start: 6, deleteCount: 0, insert: 'brave ' });
    expect(diff('hello brave world', 'hello world')).toEqual({ start: 6, deleteCount: 6, insert: '' });
    expect(diff('abc', 'aXc')).toEqual({ start: 1, deleteCount: 1, insert: 'X' });
    expect(diff('same', 'same')).toEqual({ start: 4, deleteCount: 0, insert: '' });
  });

  it('does not let the common prefix and suffix overlap on repeated characters', () => {
    // "aa" → "aaa": one "a" inserted, not a negative delete.
    expect(diff('aa', 'aaa')).toEqual({ start: 2, deleteCount: 0, insert: 'a' });
    expect(diff('aaa', 'aa')).toEqual({ start: 2, deleteCount: 1, insert: '' });
  });
});

describe('transformIndex', () => {
  /** The delta of applying `change` to a Y.Text holding `initial`. */
  function deltaOf(initial: string, change: (text: Y.Text) => void): Y.YTextEvent['delta'] {
    const doc = new Y.Doc();
    const text = doc.getText('t');
    text.insert(0, initial);
    let delta: Y.YTextEvent['delta'] = [];
    text.observe((event) => {
      delta = event.delta;
    });
    change(text);
    return delta;
  }

  it('moves a caret after an insertion before it, and keeps it before one after it', () => {
    const delta = deltaOf('hello world', (t) => t.insert(0, '>> '));
    expect(transformIndex(5, delta)).toBe(8);
    const later = deltaOf('hello world', (t) => t.insert(8, 'XX'));
    expect(transformIndex(5, later)).toBe(5);
  });

  it('pulls a caret back over a deletion before it, and to the start of a deletion around it', () => {
    const before = deltaOf('hello world', (t) => t.delete(0, 6));
    expect(transformIndex(8, before)).toBe(2);
    const around = deltaOf('hello world', (t) => t.delete(3, 5));
    expect(transformIndex(5, around)).toBe(3);
  });
});
