import { Level, type ObjectRecord } from '@scopesync/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteRelayStore } from './sqlite-relay-store.ts';

// The decision reads the relay makes in the caller's turn (an upgrade's key, its object): they
// must read what the async methods read, at the same moment, and never while a transaction waits.

const user = {
  userId: 'user_0123456789abcdef',
  level: Level.User,
  deviceName: 'd',
  signPk: null,
  boxPk: null,
  createdAt: 1,
};
const key = { keyHash: 'a'.repeat(64), userId: user.userId, createdAt: 1, revokedAt: null };
const object = (name: string): ObjectRecord => ({
  name,
  owner: user.userId,
  read: 0,
  write: 1,
  encrypted: false,
  minEpoch: 0,
  createdAt: 1,
  updatedAt: 1,
  size: 0,
  version: 0,
});

describe('SqliteRelayStore.immediateReads', () => {
  let store: SqliteRelayStore;

  beforeEach(async () => {
    store = new SqliteRelayStore({ path: ':memory:' });
    await store.createUser(user, key);
    await store.createObject(object('blob/b1'));
    await store.putShare({
      blobId: 'b1',
      userId: 'user_fedcba9876543210',
      level: 'read_only',
      grantedBy: user.userId,
      grantedAt: 2,
    });
  });

  afterEach(() => store.close());

  it('reads what the async methods read, absent rows included', async () => {
    const reads = store.immediateReads();
    if (reads === null) throw new Error('an idle SQLite store answers at once');
    expect(reads.getKeyHolder(key.keyHash)).toEqual(await store.getKeyHolder(key.keyHash));
    expect(reads.getKeyHolder('b'.repeat(64))).toBeNull();
    expect(reads.getObject('blob/b1')).toEqual(await store.getObject('blob/b1'));
    expect(reads.getObject('blob/none')).toBeNull();
    expect(reads.listShares('b1')).toEqual(await store.listShares('b1'));
    expect(reads.listShares('none')).toEqual([]);
  });

  it('sees a revoked key at once: nothing is cached', async () => {
    const reads = store.immediateReads();
    expect(reads?.getKeyHolder(key.keyHash)?.revokedAt).toBeNull();
    await store.revokeKey(key.keyHash, 5);
    expect(store.immediateReads()?.getKeyHolder(key.keyHash)?.revokedAt).toBe(5);
  });

  it('is withheld while a transaction is open or queued, and inside its callback, so nobody reads one half done', async () => {
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let inside: unknown = 'not called';
    const tx = store.transaction(async (t) => {
      inside = store.immediateReads();
      await t.updateObject('blob/b1', { read: 2 });
      await held;
    });
    // The async read waits for the transaction and sees it whole.
    let read: Promise<ObjectRecord | null>;
    try {
      await new Promise((resolve) => setImmediate(resolve));
      expect(inside).toBeNull();
      expect(store.immediateReads()).toBeNull();
      read = store.getObject('blob/b1');
    } finally {
      // Never leave the transaction open: close() would wait for it.
      release();
    }
    await tx;
    expect((await read)?.read).toBe(2);
    expect(store.immediateReads()?.getObject('blob/b1')?.read).toBe(2);
  });

  it('fails like the async methods once the store is closed', async () => {
    const reads = store.immediateReads();
    await store.close();
    expect(() => reads?.getObject('blob/b1')).toThrow(expect.objectContaining({ kind: 'Unavailable' }));
    await expect(store.getObject('blob/b1')).rejects.toMatchObject({ kind: 'Unavailable' });
  });
});
