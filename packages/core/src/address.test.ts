import { describe, expect, it } from 'vitest';
import { docAddress, parseDocName, parseKey, parseUserId } from './address.ts';
import { SyncError } from './errors.ts';

const USER = 'user_0123456789abcdef';

function badRequest(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SyncError);
    expect((error as SyncError).kind).toBe('BadRequest');
    return;
  }
  throw new Error('expected a BadRequest');
}

describe('document names', () => {
  it('parses every scope with its namespace grammar', () => {
    expect(parseDocName(`USER_PUBLIC/${USER}/profile`)).toMatchObject({
      scope: 'USER_PUBLIC',
      namespace: USER,
      key: 'profile',
    });
    expect(parseDocName(`USER_PRIVATE/${USER}/notes/2024/a.md`)).toMatchObject({ key: 'notes/2024/a.md' });
    expect(parseDocName('PUBLIC_READ/_/banner')).toMatchObject({ scope: 'PUBLIC_READ', namespace: '_' });
    expect(parseDocName('PUBLIC_RW/_/guestbook')).toMatchObject({ scope: 'PUBLIC_RW' });
    expect(parseDocName('SERVER_SCOPE/_/config')).toMatchObject({ scope: 'SERVER_SCOPE' });
    expect(parseDocName('MOD_DATA/chess/board:1')).toMatchObject({
      scope: 'MOD_DATA',
      namespace: 'chess',
      key: 'board:1',
    });
    expect(parseDocName('blob/app/config.json')).toMatchObject({ kind: 'blob', blobId: 'app/config.json' });
  });

  it('round-trips names through docAddress', () => {
    const a = docAddress('USER_PUBLIC', USER, 'a/b~c@d:e-f.g_h');
    expect(parseDocName(a.name)).toEqual(a);
  });

  it('rejects anything outside the grammar with BadRequest', () => {
    const bad = [
      '',
      'USER_PUBLIC',
      `USER_PUBLIC/${USER}`,
      `USER_PUBLIC/${USER}/`,
      'NOPE/_/x',
      'user_public/_/x',
      'USER_PUBLIC/_/x',
      'USER_PUBLIC/user_XYZ/x',
      `USER_PUBLIC/${USER}/../etc/passwd`,
      `USER_PUBLIC/${USER}/a/../b`,
      `USER_PUBLIC/${USER}/a//b`,
      `USER_PUBLIC/${USER}/./a`,
      `USER_PUBLIC/${USER}/a/`,
      `USER_PUBLIC/${USER}/${'k'.repeat(257)}`,
      `USER_PUBLIC/${USER}/a\u0000b`,
      `USER_PUBLIC/${USER}/a\nb`,
      `USER_PUBLIC/${USER}/a b`,
      `USER_PUBLIC/${USER}/a%2Fb`,
      'PUBLIC_READ/x/banner',
      'MOD_DATA/_/x',
      'MOD_DATA/9chess/x',
      'blob/',
      'blob/..',
      'blob/a\\b',
    ];
    for (const name of bad) badRequest(() => parseDocName(name));
  });

  it('accepts a key of exactly 256 characters', () => {
    expect(parseKey('k'.repeat(256))).toHaveLength(256);
  });

  it('validates user ids', () => {
    expect(parseUserId(USER)).toBe(USER);
    badRequest(() => parseUserId('user_0123456789ABCDEF'));
    badRequest(() => parseUserId('user_0123456789abcde'));
  });
});
