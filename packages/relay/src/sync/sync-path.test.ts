import { describe, expect, it } from 'vitest';
import { parseSyncPath } from './sync-path.ts';

describe('parseSyncPath', () => {
  it('tells the multiplexed endpoint from a document, in either spelling of the name', () => {
    expect(parseSyncPath('/sync?key=k')).toEqual({ kind: 'mux' });
    expect(parseSyncPath('/sync/')).toEqual({ kind: 'mux' });
    const raw = parseSyncPath('/sync/PUBLIC_RW/_/a/b?key=k');
    const encoded = parseSyncPath(`/sync/${encodeURIComponent('PUBLIC_RW/_/a/b')}`);
    expect(raw).toMatchObject({ kind: 'doc', address: { name: 'PUBLIC_RW/_/a/b', key: 'a/b' } });
    expect(encoded).toEqual(raw);
    expect(parseSyncPath('/other')).toBeNull();
    expect(parseSyncPath('/synced')).toBeNull();
  });

  it('refuses names outside the grammar with BadRequest', () => {
    for (const bad of [
      '/sync/nope',
      '/sync/blob%2F..',
      '/sync/blob/%E0%A4%A',
      '/sync/PUBLIC_RW/x/k',
      '/sync/blob/a%20b',
    ]) {
      expect(() => parseSyncPath(bad), bad).toThrow(expect.objectContaining({ kind: 'BadRequest' }));
    }
  });
});
