import { expect, it } from 'vitest';
import { expectKind } from './relay-store-suite-async.ts';
import { auditChain, sealEntry } from './relay-store-suite-audit-entries.ts';
import type { RelayStoreSuiteContext } from './relay-store-suite-context.ts';
import { ALICE, BOB, key, keyGrant, object, share, user, wrappedKey } from './relay-store-suite-records.ts';

// The relay store suite's tests of a store's lifetime: everything kept across a reopen (when the
// fixture can reopen), and close.

/** Registers the tests of durability across a reopen and of close. */
export function lifecycleTests({ store, canReopen, reopen }: RelayStoreSuiteContext): void {
  it('keeps everything across a reopen', async (context) => {
    if (!canReopen()) {
      context.skip();
      return;
    }
    const bound = { ...key('h1', ALICE), deviceId: 'ef'.repeat(16) };
    await store().createUser(user(ALICE), bound);
    await store().putBlobData('blob/b', { data: new Uint8Array([4, 5]), create: object('blob/b'), now: 2 });
    await store().putShare(share('b', 'read_only', 3));
    await store().updateObject('blob/b', { encrypted: true, minEpoch: 2 });
    await store().putKeyGrant(keyGrant('b', BOB, 2));
    await store().putWrappedKey(wrappedKey('blob/b', 'aa', 2));
    await store().appendAudit((head) =>
      sealEntry(head, { accessor: 'guest', target: ALICE, channel: 'ws' }, 4),
    );
    await store().putBlobData('blob/gone', {
      data: new Uint8Array([1]),
      create: object('blob/gone'),
      now: 5,
    });
    await store().deleteObject('blob/gone');
    await store().transaction(async (tx) => {
      await tx.createObject(object('PUBLIC_RW/_/from-tx'));
      await tx.replaceGrants('Chat', [{ source: 'Chat', target: 'Scores', permission: 'read' }]);
    });
    await store().close();
    const again = await reopen();
    expect(
      await again.putBlobData('blob/gone', {
        data: new Uint8Array([2]),
        create: object('blob/gone'),
        now: 6,
      }),
    ).toMatchObject({ version: 2 });
    expect(await again.getUser(ALICE)).toEqual(user(ALICE));
    expect(await again.getKey('h1')).toEqual(bound);
    expect(await again.getBlobData('blob/b')).toEqual(new Uint8Array([4, 5]));
    expect(await again.listShares('b')).toHaveLength(1);
    expect(await again.getObject('blob/b')).toMatchObject({ encrypted: true, minEpoch: 2, version: 1 });
    expect(await again.listKeyGrants('b', BOB)).toEqual([keyGrant('b', BOB, 2)]);
    expect(await again.listWrappedKeys('blob/b')).toEqual([wrappedKey('blob/b', 'aa', 2)]);
    expect((await again.findUserBySignPk('c2lnbg'))?.userId).toBe(ALICE);
    expect(await again.getObject('PUBLIC_RW/_/from-tx')).toEqual(object('PUBLIC_RW/_/from-tx'));
    expect(await again.listGrants('Chat')).toHaveLength(1);
    expect(await auditChain(again)).toHaveLength(1);
    // The signing key stays one user's after a reopen, too.
    await expectKind(again.createUser(user(BOB), key('h2', BOB)), 'Conflict');
  });

  it('closes idempotently and then rejects with Unavailable', async () => {
    await store().close();
    await store().close();
    await expectKind(store().getUser(ALICE), 'Unavailable');
    await expectKind(
      store().appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE }, 1)),
      'Unavailable',
    );
    await expectKind(
      store().transaction(async () => undefined),
      'Unavailable',
    );
  });
}
