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
      // Read as sent, never resolved: a dot segment or a backslash is part of the name, and bad.
      '/sync/PUBLIC_RW/_/../../USER_PRIVATE/user_0123456789abcdef/notes',
      '/sync/PUBLIC_RW/_/./a',
      '/sync/PUBLIC_RW%2F_%2F..',
      '/sync/PUBLIC_RW\\_\\a',
      '/sync//',
      '/sync/%',
      '/sync/PUBLIC_RW/_/a%ZZ?key=k',
      // Not an origin-form target.
      'sync/PUBLIC_RW/_/a',
      'http://relay.example/sync/PUBLIC_RW/_/a',
      '*',
      '',
    ]) {
      expect(() => parseSyncPath(bad), bad).toThrow(expect.objectContaining({ kind: 'BadRequest' }));
    }
  });

  it('ends the path at the query or a fragment, never reading either as part of the name', () => {
    expect(parseSyncPath('/sync/PUBLIC_RW/_/a?key=k/b')).toMatchObject({
      address: { name: 'PUBLIC_RW/_/a' },
    });
    expect(parseSyncPath('/sync/PUBLIC_RW/_/a#b?c')).toMatchObject({ address: { name: 'PUBLIC_RW/_/a' } });
    expect(parseSyncPath('/sync#x')).toEqual({ kind: 'mux' });
    expect(parseSyncPath('/sync?/PUBLIC_RW/_/a')).toEqual({ kind: 'mux' });
    expect(parseSyncPath('/syncx?y')).toBeNull();
    expect(parseSyncPath('/?/sync/PUBLIC_RW/_/a')).toBeNull();
  });
});
