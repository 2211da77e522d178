import { expect, it } from 'vitest';
import { expectKind } from './relay-store-suite-async.ts';
import type { RelayStoreSuiteContext } from './relay-store-suite-context.ts';
import { ALICE, BOB, object, share } from './relay-store-suite-records.ts';

// The relay store suite's tests of what one party lets another reach: a blob's shares with
// users, and a mod's grants on other mods.

/** Registers the tests of shares: per blob, per user, and dropped with the blob. */
export function shareTests({ store }: RelayStoreSuiteContext): void {
  it('keeps shares per blob and drops them with the blob', async () => {
    await store().createObject(object('blob/doc'));
    await store().putShare(share('doc', 'read_only', 5));
    await store().putShare(share('doc', 'read_write', 6));
    await store().putShare(share('other', 'read_only', 6));
    expect(await store().listShares('doc')).toEqual([share('doc', 'read_write', 6)]);
    expect(await store().deleteShare('doc', BOB)).toBe(true);
    expect(await store().deleteShare('doc', BOB)).toBe(false);
    await store().putShare(share('doc', 'read_only', 7));
    await store().putBlobData('blob/doc', {
      data: new Uint8Array([1]),
      create: object('blob/doc'),
      now: 8,
    });
    await store().deleteObject('blob/doc');
    expect(await store().listShares('doc')).toEqual([]);
    expect(await store().getBlobData('blob/doc')).toBeNull();
    expect(await store().listShares('other')).toHaveLength(1);
  });

  it("lists the blobs shared with a user (their 'shared with me'), and forgets revoked and deleted ones", async () => {
    await store().createObject(object('blob/b2'));
    await store().createObject(object('blob/a1'));
    await store().createObject(object('blob/gone'));
    await store().putShare(share('b2', 'read_write', 5));
    await store().putShare(share('a1', 'read_only', 6));
    await store().putShare(share('gone', 'read_only', 7));
    // Alice's shares to someone else are not Bob's.
    await store().putShare({ ...share('a1', 'read_only', 8), userId: ALICE, grantedBy: BOB });
    expect(await store().listSharesOfUser(BOB)).toEqual([
      share('a1', 'read_only', 6),
      share('b2', 'read_write', 5),
      share('gone', 'read_only', 7),
    ]);
    await store().deleteObject('blob/gone');
    await store().deleteShare('b2', BOB);
    expect(await store().listSharesOfUser(BOB)).toEqual([share('a1', 'read_only', 6)]);
    expect(await store().listSharesOfUser('user_00000000000000c0')).toEqual([]);
  });
}

/** Registers the test of a mod's grants, replaced as a whole. */
export function modGrantTests({ store }: RelayStoreSuiteContext): void {
  it('replaces a mod’s grants', async () => {
    await store().replaceGrants('Chat', [
      { source: 'Chat', target: 'CloudM', permission: 'read', keys: ['config', 'rooms/*'] },
      { source: 'Chat', target: 'Scores', permission: 'full', expiresAt: 99 },
    ]);
    await store().replaceGrants('Scores', [{ source: 'Scores', target: 'Chat', permission: 'write' }]);
    expect(await store().listGrants('Chat')).toEqual([
      { source: 'Chat', target: 'CloudM', permission: 'read', keys: ['config', 'rooms/*'] },
      { source: 'Chat', target: 'Scores', permission: 'full', expiresAt: 99 },
    ]);
    expect(await store().listGrants()).toHaveLength(3);
    await store().replaceGrants('Chat', []);
    expect(await store().listGrants('Chat')).toEqual([]);
    await expectKind(
      store().replaceGrants('Chat', [{ source: 'Other', target: 'X', permission: 'read' }]),
      'BadRequest',
    );
  });
}
