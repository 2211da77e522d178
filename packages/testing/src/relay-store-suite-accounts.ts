import { Level, SyncError } from '@scopesync/core';
import { expect, it } from 'vitest';
import { expectKind } from './relay-store-suite-async.ts';
import type { RelayStoreSuiteContext } from './relay-store-suite-context.ts';
import { ALICE, BOB, key, user } from './relay-store-suite-records.ts';

// The relay store suite's tests of accounts: users with their API key hashes and levels, their
// signing keys and the retirement of those, the devices keys are bound to, and device lists.

/** Registers the tests of users, their API key hashes and their levels. */
export function accountTests({ store }: RelayStoreSuiteContext): void {
  it('creates users with their first key, and finds keys by hash', async () => {
    await store().createUser(user(ALICE), { keyHash: 'h1', userId: ALICE, createdAt: 1, revokedAt: null });
    expect(await store().getUser(ALICE)).toEqual(user(ALICE));
    expect(await store().getUser(BOB)).toBeNull();
    expect(await store().getKey('h1')).toEqual({
      keyHash: 'h1',
      userId: ALICE,
      createdAt: 1,
      revokedAt: null,
    });
    expect(await store().getKey('nope')).toBeNull();
    expect(await store().countUsers()).toBe(1);
    await expectKind(
      store().createUser(user(ALICE), { keyHash: 'h2', userId: ALICE, createdAt: 1, revokedAt: null }),
      'Conflict',
    );
    await expectKind(
      store().createUser(user(BOB), { keyHash: 'h1', userId: BOB, createdAt: 1, revokedAt: null }),
      'Conflict',
    );
    // The failed create left nothing behind: it was one transaction.
    expect(await store().getUser(BOB)).toBeNull();
  });

  it('reads a key with its user in one call, and sees revocation and level changes at once', async () => {
    const alice = user(ALICE);
    await store().createUser(alice, { keyHash: 'h1', userId: ALICE, createdAt: 1, revokedAt: null });
    await store().addKey({ keyHash: 'h2', userId: ALICE, createdAt: 2, revokedAt: null });
    // Exactly what a decision needs: nothing else of the key or the user.
    expect(await store().getKeyHolder('h1')).toStrictEqual({
      revokedAt: null,
      user: { userId: ALICE, level: alice.level },
    });
    expect(await store().getKeyHolder('nope')).toBeNull();
    // Authentication reads through this call: a revocation or a new level shows on the next read.
    expect(await store().revokeKey('h2', 7)).toBe(true);
    expect((await store().getKeyHolder('h2'))?.revokedAt).toBe(7);
    expect(await store().setUserLevel(ALICE, Level.Admin)).toBe(true);
    expect((await store().getKeyHolder('h1'))?.user).toStrictEqual({ userId: ALICE, level: Level.Admin });
    // Inside a transaction it sees the transaction's own writes.
    await store().transaction(async (tx) => {
      await tx.revokeKey('h1', 9);
      expect((await tx.getKeyHolder('h1'))?.revokedAt).toBe(9);
    });
    expect(await store().getKeyHolder('h1')).toStrictEqual({
      revokedAt: 9,
      user: { userId: ALICE, level: Level.Admin },
    });
    expect((await store().getKey('h1'))?.revokedAt).toBe(9);
  });

  it('adds and revokes keys, and changes levels', async () => {
    await store().createUser(user(ALICE), { keyHash: 'h1', userId: ALICE, createdAt: 1, revokedAt: null });
    await store().addKey({ keyHash: 'h2', userId: ALICE, createdAt: 2, revokedAt: null });
    await expectKind(
      store().addKey({ keyHash: 'h3', userId: BOB, createdAt: 2, revokedAt: null }),
      'NotFound',
    );
    await expectKind(
      store().addKey({ keyHash: 'h2', userId: ALICE, createdAt: 2, revokedAt: null }),
      'Conflict',
    );
    expect(await store().revokeKey('h2', 5)).toBe(true);
    expect(await store().revokeKey('h2', 6)).toBe(false);
    expect(await store().revokeKey('unknown', 6)).toBe(false);
    expect((await store().getKey('h2'))?.revokedAt).toBe(5);
    expect((await store().getKey('h1'))?.revokedAt).toBeNull();
    expect(await store().setUserLevel(ALICE, Level.Admin)).toBe(true);
    expect(await store().setUserLevel(BOB, Level.Admin)).toBe(false);
    expect((await store().getUser(ALICE))?.level).toBe(Level.Admin);
    // A user's keys, revoked too, oldest first: what an identity rotation revokes.
    await store().createUser(
      { ...user(BOB), signPk: null },
      { keyHash: 'b1', userId: BOB, createdAt: 1, revokedAt: null },
    );
    expect((await store().listKeys(ALICE)).map((k) => [k.keyHash, k.revokedAt])).toEqual([
      ['h1', null],
      ['h2', 5],
    ]);
    expect(await store().listKeys('user_ffffffffffffffff')).toEqual([]);
  });
}

/** Registers the tests of signing keys (one user each, retired ones kept), device-bound keys and device lists. */
export function identityKeyTests({ store }: RelayStoreSuiteContext): void {
  it('finds users by signing key, and keeps one signing key to one user', async () => {
    await store().createUser(user(ALICE), { keyHash: 'h1', userId: ALICE, createdAt: 1, revokedAt: null });
    await store().createUser(
      { ...user(BOB), signPk: null },
      { keyHash: 'h2', userId: BOB, createdAt: 2, revokedAt: null },
    );
    expect((await store().findUserBySignPk('c2lnbg'))?.userId).toBe(ALICE);
    expect(await store().findUserBySignPk('other')).toBeNull();
    // Another user may not take a signing key that is registered already…
    await expectKind(store().setUserKeys(BOB, { signPk: 'c2lnbg', boxPk: null }), 'Conflict');
    await expectKind(
      store().createUser(
        { ...user('user_00000000000000c0'), signPk: 'c2lnbg' },
        { keyHash: 'h3', userId: 'user_00000000000000c0', createdAt: 3, revokedAt: null },
      ),
      'Conflict',
    );
    expect(await store().getUser('user_00000000000000c0')).toBeNull();
    // …but its holder may set it again, with a box key.
    expect(await store().setUserKeys(ALICE, { signPk: 'c2lnbg', boxPk: 'Ym94' })).toBe(true);
    expect(await store().getUser(ALICE)).toMatchObject({ signPk: 'c2lnbg', boxPk: 'Ym94' });
    expect(await store().setUserKeys(BOB, { signPk: 'Ym9i', boxPk: 'Ym9iYm94' })).toBe(true);
    expect((await store().findUserBySignPk('Ym9i'))?.userId).toBe(BOB);
    expect(await store().setUserKeys('user_00000000000000d0', { signPk: null, boxPk: null })).toBe(false);
  });

  it('keeps retired signing keys: the first retirement of a key stands, and a user’s chain comes oldest first', async () => {
    await store().createUser(user(ALICE), { keyHash: 'h1', userId: ALICE, createdAt: 1, revokedAt: null });
    const retired = (signPk: string, next: string, at: number) => ({
      signPk,
      userId: ALICE,
      nextSignPk: next,
      nextBoxPk: `${next}Ym94`,
      relayId: 'relay-a',
      challenge: `challenge-${at}`,
      signature: new Uint8Array(64).fill(at),
      countersignature: new Uint8Array(64).fill(at + 1),
      retiredAt: at,
    });
    expect(await store().getRetiredKey('c2lnbg')).toBeNull();
    expect(await store().listRetiredKeys(ALICE)).toEqual([]);
    // Out of order on purpose: the list is by time, not by insertion.
    expect(await store().retireSignKey(retired('a2V5Mg', 'a2V5Mw', 20))).toBe(true);
    expect(await store().retireSignKey(retired('c2lnbg', 'a2V5Mg', 10))).toBe(true);
    // A second retirement of the same key (a replayed rotation) keeps the first.
    expect(await store().retireSignKey(retired('c2lnbg', 'dGhpZWY', 30))).toBe(false);
    expect(await store().getRetiredKey('c2lnbg')).toEqual(retired('c2lnbg', 'a2V5Mg', 10));
    expect(await store().listRetiredKeys(ALICE)).toEqual([
      retired('c2lnbg', 'a2V5Mg', 10),
      retired('a2V5Mg', 'a2V5Mw', 20),
    ]);
    expect(await store().listRetiredKeys(BOB)).toEqual([]);
    // Rolled back with a transaction like any write.
    await expectKind(
      store().transaction(async (tx) => {
        await tx.retireSignKey(retired('b3RoZXI', 'bmV4dA', 40));
        throw new SyncError('Conflict', 'undo');
      }),
      'Conflict',
    );
    expect(await store().getRetiredKey('b3RoZXI')).toBeNull();
  });

  it('keeps the device a key is bound to, binds an unbound key once, and revokes by device in a transaction', async () => {
    const phone = 'ab'.repeat(16);
    await store().createUser(user(ALICE), { ...key('h1', ALICE), deviceId: 'cd'.repeat(16) });
    await store().addKey({ ...key('h2', ALICE, 2), deviceId: phone });
    await store().addKey(key('h3', ALICE, 3));
    expect(await store().getKey('h2')).toEqual({ ...key('h2', ALICE, 2), deviceId: phone });
    // A key bound to no device reads back without the field, as it was written.
    expect(await store().getKey('h3')).toEqual(key('h3', ALICE, 3));
    expect((await store().getKey('h1'))?.deviceId).toBe('cd'.repeat(16));
    // A key bound to no device is bound once; a bound one keeps its device.
    expect(await store().bindKeyToDevice('h2', 'ef'.repeat(16))).toBe(false);
    expect(await store().bindKeyToDevice('unknown', phone)).toBe(false);
    expect(await store().bindKeyToDevice('h3', phone)).toBe(true);
    expect(await store().bindKeyToDevice('h3', 'ef'.repeat(16))).toBe(false);
    // What a device list without the phone does: its keys revoked, with the list, atomically.
    await store().transaction(async (tx) => {
      for (const k of await tx.listKeys(ALICE)) if (k.deviceId === phone) await tx.revokeKey(k.keyHash, 9);
    });
    expect((await store().listKeys(ALICE)).map((k) => [k.keyHash, k.deviceId, k.revokedAt])).toEqual([
      ['h1', 'cd'.repeat(16), null],
      ['h2', phone, 9],
      ['h3', phone, 9],
    ]);
    expect(await store().getKey('h1')).toMatchObject({ deviceId: 'cd'.repeat(16), revokedAt: null });
  });

  it('keeps device list versions: one per (user, version), the first write kept, oldest first', async () => {
    const record = (userId: string, version: number, fill: number) => ({
      userId,
      version,
      list: new Uint8Array(8).fill(fill),
      createdAt: 100 + version,
    });
    expect(await store().listDeviceLists(ALICE)).toEqual([]);
    expect(await store().appendDeviceList(record(ALICE, 2, 2))).toBe(true);
    expect(await store().appendDeviceList(record(ALICE, 1, 1))).toBe(true);
    expect(await store().appendDeviceList(record(BOB, 1, 9))).toBe(true);
    // A second write of a version (a rewritten history) keeps the first.
    expect(await store().appendDeviceList(record(ALICE, 1, 7))).toBe(false);
    expect(await store().listDeviceLists(ALICE)).toEqual([record(ALICE, 1, 1), record(ALICE, 2, 2)]);
    expect(await store().listDeviceLists(BOB)).toEqual([record(BOB, 1, 9)]);
  });
}
