import { expect, it } from 'vitest';
import type { RelayStoreSuiteContext } from './relay-store-suite-context.ts';
import { ALICE, BOB, object, share } from './relay-store-suite-records.ts';

// The relay store suite's tests of what end-to-end encryption keeps on the relay: an object's
// minimum key epoch, key grants, member lists with their signed heads, and wrapped keys.

/** Registers the tests of key epochs, key grants, member lists, signed heads and wrapped keys. */
export function encryptionTests({ store }: RelayStoreSuiteContext): void {
  it('keeps an object’s minimum key epoch', async () => {
    const name = `USER_PRIVATE/${ALICE}/notes`;
    await store().createObject({ ...object(name), read: 1, encrypted: true });
    expect((await store().getObject(name))?.minEpoch).toBe(0);
    expect(await store().updateObject(name, { minEpoch: 3 })).toMatchObject({
      minEpoch: 3,
      encrypted: true,
    });
    expect(await store().updateObject(name, { read: 1 })).toMatchObject({ minEpoch: 3 });
    expect((await store().getObject(name))?.minEpoch).toBe(3);
  });

  it('keeps key grants per blob, user and epoch, and drops them with the share or the blob', async () => {
    const grant = (userId: string, epoch: number, byte: number) => ({
      blobId: 'doc',
      userId,
      epoch,
      sealedKey: new Uint8Array([byte, 1]),
      grant: new Uint8Array([byte, 2]),
      grantedBy: ALICE,
      grantedAt: epoch * 10,
    });
    await store().createObject(object('blob/doc'));
    await store().putShare(share('doc', 'read_only', 5));
    await store().putKeyGrant(grant(BOB, 2, 7));
    await store().putKeyGrant(grant(BOB, 1, 8));
    await store().putKeyGrant(grant(ALICE, 1, 9));
    await store().putKeyGrant({ ...grant(BOB, 1, 8), blobId: 'other' });
    // The same (blob, user, epoch) is replaced, not duplicated.
    const stored = grant(BOB, 2, 6);
    await store().putKeyGrant(stored);
    stored.sealedKey[0] = 99; // the store kept its own copy
    expect(await store().listKeyGrants('doc', BOB)).toEqual([grant(BOB, 1, 8), grant(BOB, 2, 6)]);
    expect((await store().listKeyGrants('doc')).map((g) => [g.userId, g.epoch])).toEqual([
      [ALICE, 1],
      [BOB, 1],
      [BOB, 2],
    ]);
    expect(await store().deleteShare('doc', BOB)).toBe(true);
    expect(await store().listKeyGrants('doc', BOB)).toEqual([]);
    expect(await store().listKeyGrants('doc', ALICE)).toHaveLength(1);
    expect(await store().listKeyGrants('other', BOB)).toHaveLength(1);
    await store().deleteObject('blob/doc');
    expect(await store().listKeyGrants('doc')).toEqual([]);
    expect(await store().listKeyGrants('other')).toHaveLength(1);
  });

  it('keeps every member list version once, and each member’s latest signed head, and drops them with the blob', async () => {
    const list = (blobId: string, version: number, byte: number) => ({
      blobId,
      version,
      epoch: version,
      keyId: 'ab'.repeat(16),
      list: new Uint8Array([byte, version]),
      createdAt: version * 10,
    });
    await store().createObject(object('blob/doc'));
    expect(await store().appendMemberList(list('doc', 2, 2))).toBe(true);
    const first = list('doc', 1, 1);
    expect(await store().appendMemberList(first)).toBe(true);
    first.list[0] = 99; // the store kept its own copy
    // A second write of a version is refused and keeps the first: the chain cannot be rewritten.
    expect(await store().appendMemberList(list('doc', 1, 7))).toBe(false);
    expect(await store().appendMemberList(list('other', 1, 3))).toBe(true);
    expect(await store().listMemberLists('doc')).toEqual([list('doc', 1, 1), list('doc', 2, 2)]);
    const head = (userId: string, byte: number) => ({
      blobId: 'doc',
      userId,
      head: new Uint8Array([byte]),
      updatedAt: byte,
    });
    await store().putSignedHead(head(BOB, 1));
    await store().putSignedHead(head(ALICE, 2));
    await store().putSignedHead(head(BOB, 3));
    expect(await store().listSignedHeads('doc')).toEqual([head(ALICE, 2), head(BOB, 3)]);
    await store().deleteObject('blob/doc');
    expect(await store().listMemberLists('doc')).toEqual([]);
    expect(await store().listSignedHeads('doc')).toEqual([]);
    expect(await store().listMemberLists('other')).toHaveLength(1);
  });

  it('keeps a document’s wrapped keys, first write of a key id winning, and drops them with it', async () => {
    const doc = `USER_PRIVATE/${ALICE}/notes`;
    const key = (keyId: string, epoch: number, byte: number) => ({
      docName: doc,
      keyId,
      epoch,
      wrapped: new Uint8Array([byte, byte]),
      createdAt: byte,
    });
    expect(await store().listWrappedKeys(doc)).toEqual([]);
    expect(await store().putWrappedKey(key('bb', 2, 1))).toBe(true);
    expect(await store().putWrappedKey(key('aa', 1, 2))).toBe(true);
    expect(await store().putWrappedKey(key('cc', 1, 3))).toBe(true);
    expect(await store().putWrappedKey(key('aa', 1, 9))).toBe(false);
    expect(await store().putWrappedKey({ ...key('aa', 1, 4), docName: 'blob/x' })).toBe(true);
    expect(await store().listWrappedKeys(doc)).toEqual([key('aa', 1, 2), key('cc', 1, 3), key('bb', 2, 1)]);
    await store().createObject({ ...object(doc), read: 1, encrypted: true });
    await store().deleteObject(doc);
    expect(await store().listWrappedKeys(doc)).toEqual([]);
    expect(await store().listWrappedKeys('blob/x')).toHaveLength(1);
  });
}
