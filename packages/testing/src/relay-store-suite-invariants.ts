import { describe, expect, it } from 'vitest';
import { expectKind } from './relay-store-suite-async.ts';
import type { RelayStoreSuiteContext } from './relay-store-suite-context.ts';
import { ALICE, BOB, key, keyGrant, object, share, user, wrappedKey } from './relay-store-suite-records.ts';

// The relay store suite's tests of the invariants every backend keeps, whichever method writes:
// one user per signing key, cascades on deletion, versions that never repeat.

/** Registers the `invariants every backend keeps` block. */
export function invariantTests({ store }: RelayStoreSuiteContext): void {
  describe('invariants every backend keeps', () => {
    it('gives a signing key to one user only, whichever method tries', async () => {
      await store().createUser(user(ALICE), key('h1', ALICE));
      await store().createUser({ ...user(BOB), signPk: 'Ym9i' }, key('h2', BOB));
      await expectKind(store().setUserKeys(BOB, { signPk: 'c2lnbg', boxPk: null }), 'Conflict');
      expect((await store().getUser(BOB))?.signPk).toBe('Ym9i');
      // Once Alice lets go of it, Bob may take it; users without a key are not in each other's way.
      expect(await store().setUserKeys(ALICE, { signPk: null, boxPk: null })).toBe(true);
      expect(await store().setUserKeys(BOB, { signPk: 'c2lnbg', boxPk: null })).toBe(true);
      expect((await store().findUserBySignPk('c2lnbg'))?.userId).toBe(BOB);
      const carol = 'user_00000000000000c0';
      await store().createUser({ ...user(carol), signPk: null }, key('h3', carol));
      expect(await store().countUsers()).toBe(3);
    });

    it('rejects a first key that names another user, and keeps nothing of it', async () => {
      await expectKind(store().createUser(user(ALICE), key('h1', BOB)), 'BadRequest');
      expect(await store().getUser(ALICE)).toBeNull();
      expect(await store().getKey('h1')).toBeNull();
    });

    it('deletes everything attached to an object with it, and only that', async () => {
      const doc = `USER_PRIVATE/${ALICE}/notes`;
      await store().putBlobData('blob/b', { data: new Uint8Array([1]), create: object('blob/b'), now: 1 });
      await store().putBlobData('blob/bb', {
        data: new Uint8Array([2]),
        create: object('blob/bb'),
        now: 1,
      });
      await store().createObject({ ...object(doc), encrypted: true });
      for (const blobId of ['b', 'bb']) {
        await store().putShare(share(blobId, 'read_only', 1));
        await store().putKeyGrant(keyGrant(blobId, BOB, 1));
        await store().putKeyGrant(keyGrant(blobId, ALICE, 1));
        await store().putWrappedKey(wrappedKey(`blob/${blobId}`, 'aa', 1));
      }
      await store().putWrappedKey(wrappedKey(doc, 'aa', 1));
      expect(await store().deleteObject('blob/b')).toBe(true);
      expect(await store().getObject('blob/b')).toBeNull();
      expect(await store().getBlobData('blob/b')).toBeNull();
      expect(await store().listShares('b')).toEqual([]);
      expect(await store().listKeyGrants('b')).toEqual([]);
      expect(await store().listWrappedKeys('blob/b')).toEqual([]);
      // A neighbour whose name starts the same keeps all of its own.
      expect(await store().getBlobData('blob/bb')).toEqual(new Uint8Array([2]));
      expect(await store().listShares('bb')).toHaveLength(1);
      expect(await store().listKeyGrants('bb')).toHaveLength(2);
      expect(await store().listWrappedKeys('blob/bb')).toHaveLength(1);
      // A document loses its wrapped keys with it.
      expect(await store().deleteObject(doc)).toBe(true);
      expect(await store().listWrappedKeys(doc)).toEqual([]);
      // No object: false, and nothing else is touched.
      expect(await store().deleteObject('blob/none')).toBe(false);
      expect(await store().listShares('bb')).toHaveLength(1);
    });

    it('gives a recreated blob versions past every earlier one, also across reused names of documents', async () => {
      const put = (name: string) =>
        store().putBlobData(name, { data: new Uint8Array([1]), create: object(name), now: 1 });
      for (let round = 1; round <= 3; round++) {
        expect((await put('blob/again')).version).toBe(2 * round - 1);
        expect((await put('blob/again')).version).toBe(2 * round);
        expect(await store().deleteObject('blob/again')).toBe(true);
      }
      // Another name has its own versions.
      expect((await put('blob/fresh')).version).toBe(1);
    });
  });
}
