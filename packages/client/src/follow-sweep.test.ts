import { describe, expect, it } from 'vitest';
import { nextBatch } from './follow-sweep.ts';

describe('nextBatch (the blobs one follow sweep looks at)', () => {
  it('takes every blob when they fit in one sweep', () => {
    expect(nextBatch(['a', 'b'], 'a', 3)).toEqual(['a', 'b']);
  });

  it('goes on after the last blob looked at, wrapping around, so every blob gets its turn', () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let sweep = 0; sweep < 3; sweep++) {
      const batch = nextBatch(ids, cursor, 2);
      expect(batch.length).toBe(2);
      seen.push(...batch);
      cursor = batch.at(-1);
    }
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'e', 'a']);
    // A cursor whose blob is gone (deleted) starts over.
    expect(nextBatch(ids, 'gone', 2)).toEqual(['a', 'b']);
  });
});
