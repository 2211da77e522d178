import {
  type KeyGrantRecord,
  type KeyRecord,
  Level,
  type ObjectRecord,
  type ShareLevel,
  type ShareRecord,
  type UserRecord,
  type WrappedKeyRecord,
} from '@scopesync/core';

// The records the relay store suite writes: two users and builders of each kind of record, so
// that a test states only what differs from the usual.

/** The user most tests act as: the owner of their objects and the granter of their shares. */
export const ALICE = 'user_00000000000000a1';
/** The other user: the one Alice shares with. */
export const BOB = 'user_00000000000000b0';

/** A user record of `userId` at `level`, with a signing key and no box key. */
export function user(userId: string, level = Level.User as Level): UserRecord {
  return { userId, level, deviceName: `${userId}-laptop`, signPk: 'c2lnbg', boxPk: null, createdAt: 1000 };
}

/** Alice shares blob `blobId` with Bob. */
export function share(blobId: string, level: ShareLevel, grantedAt: number): ShareRecord {
  return { blobId, userId: BOB, level, grantedBy: ALICE, grantedAt };
}

/** An unencrypted object `name` of `owner`, at version 0 and without bytes. */
export function object(name: string, owner = ALICE): ObjectRecord {
  return {
    name,
    owner,
    read: 2,
    write: 1,
    encrypted: false,
    minEpoch: 0,
    createdAt: 10,
    updatedAt: 10,
    size: 0,
    version: 0,
  };
}

/** An unrevoked API key hash of `userId`, bound to no device. */
export function key(keyHash: string, userId: string, createdAt = 1): KeyRecord {
  return { keyHash, userId, createdAt, revokedAt: null };
}

/** Alice's key grant of blob `blobId` to `userId` for `epoch`, with bytes derived from the epoch. */
export function keyGrant(blobId: string, userId: string, epoch: number): KeyGrantRecord {
  return {
    blobId,
    userId,
    epoch,
    sealedKey: new Uint8Array([epoch, 1]),
    grant: new Uint8Array([epoch, 2]),
    grantedBy: ALICE,
    grantedAt: epoch * 10,
  };
}

/** A wrapped key `keyId` of document `docName` for `epoch`, with bytes derived from the epoch. */
export function wrappedKey(docName: string, keyId: string, epoch: number): WrappedKeyRecord {
  return { docName, keyId, epoch, wrapped: new Uint8Array([epoch, 9]), createdAt: epoch };
}
