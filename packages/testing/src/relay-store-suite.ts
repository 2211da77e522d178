import {
  type AuditChannel,
  type AuditHead,
  type AuditRecord,
  type ErrorKind,
  isSyncError,
  type KeyGrantRecord,
  type KeyRecord,
  Level,
  type ObjectRecord,
  RELAY_STORE_TX_METHODS,
  type RelayStore,
  type RelayStoreTx,
  type ShareLevel,
  type ShareRecord,
  SYSTEM_OWNER,
  SyncError,
  type UserRecord,
  type WrappedKeyRecord,
} from '@scopesync/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

/** What a {@link RelayStoreSetup} hands to {@link runRelayStoreSuite} for one test. */
export interface RelayStoreFixture {
  /** A fresh, empty store. The suite closes it after the test. */
  readonly subject: RelayStore;
  /**
   * Opens a new store over the same data, after the suite closed `subject`; the suite closes
   * what it returns. Omit it for stores that keep nothing; the durability test is then skipped.
   */
  readonly reopen?: () => Promise<RelayStore>;
  /** Releases files and directories, after every store of the test is closed. */
  readonly teardown?: () => Promise<void>;
}

/** Creates the store under test; called once per test. */
export type RelayStoreSetup = () => Promise<RelayStoreFixture>;

const ALICE = 'user_00000000000000a1';
const BOB = 'user_00000000000000b0';

function user(userId: string, level = Level.User as Level): UserRecord {
  return { userId, level, deviceName: `${userId}-laptop`, signPk: 'c2lnbg', boxPk: null, createdAt: 1000 };
}

/** Alice shares blob `blobId` with Bob. */
function share(blobId: string, level: ShareLevel, grantedAt: number): ShareRecord {
  return { blobId, userId: BOB, level, grantedBy: ALICE, grantedAt };
}

function object(name: string, owner = ALICE): ObjectRecord {
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

function key(keyHash: string, userId: string, createdAt = 1): KeyRecord {
  return { keyHash, userId, createdAt, revokedAt: null };
}

function keyGrant(blobId: string, userId: string, epoch: number): KeyGrantRecord {
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

function wrappedKey(docName: string, keyId: string, epoch: number): WrappedKeyRecord {
  return { docName, keyId, epoch, wrapped: new Uint8Array([epoch, 9]), createdAt: epoch };
}

/** The `prevHash` of the first audit entry. */
const GENESIS_HASH = '0'.repeat(64);

/** What one audited access was, before the log gives it a place. */
interface AuditEvent {
  readonly accessor: string;
  readonly target: string;
  readonly action?: string;
  readonly channel?: AuditChannel;
}

/**
 * The entry that follows `head`. The store treats hashes as opaque, so a stand-in digest does
 * (the relay's real one needs node:crypto, which this package does without); it still differs
 * per entry and covers `prevHash`, so a chain that skipped an entry would not check out.
 */
function sealEntry(head: AuditHead | null, event: AuditEvent, ts: number): AuditRecord {
  const unsealed = {
    seq: (head?.seq ?? 0) + 1,
    id: `AUDIT::${event.accessor}::${event.target}::${ts}`,
    ts,
    accessor: event.accessor,
    target: event.target,
    scope: 'USER_PUBLIC',
    key: 'profile',
    action: event.action ?? 'read',
    result: 'ok' as const,
    channel: event.channel ?? 'http',
    reason: 'USER_PUBLIC is readable by everyone',
    prevHash: head?.hash ?? GENESIS_HASH,
  };
  return { ...unsealed, hash: standInHash(JSON.stringify(unsealed)) };
}

/** 64 hex characters from FNV-1a over the text, four times with different offsets. */
function standInHash(text: string): string {
  let out = '';
  for (let round = 0; round < 4; round++) {
    let h = (0x811c9dc5 ^ round) >>> 0;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
    out += h.toString(16).padStart(8, '0').repeat(2);
  }
  return out;
}

/** The whole audit log, checked to be one unbroken chain ending at the recorded head. */
async function auditChain(store: RelayStore): Promise<AuditRecord[]> {
  const entries = await store.queryAudit({});
  entries.forEach((entry, i) => {
    expect(entry.seq).toBe(i + 1);
    expect(entry.prevHash).toBe(i === 0 ? GENESIS_HASH : entries[i - 1]?.hash);
  });
  const last = entries.at(-1);
  expect(await store.auditHead()).toEqual(last ? { seq: last.seq, hash: last.hash } : null);
  return entries;
}

/** A promise and the function that resolves it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** The timer function through globalThis: this package compiles without DOM or Node types. */
const timers = globalThis as unknown as { setTimeout(callback: () => void, ms: number): unknown };

/** Lets pending callbacks, timers and I/O completions run: enough for a call to finish if nothing holds it back. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => timers.setTimeout(r, 0));
}

async function expectKind(promise: Promise<unknown>, kind: ErrorKind): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isSyncError(error, kind), `expected SyncError(${kind}), got ${String(error)}`).toBe(true);
}

/**
 * Registers a Vitest `describe(name)` block that checks a {@link RelayStore} against its
 * contract in `@scopesync/core`: users and key hashes, object metadata and raw blob bytes with
 * versions, shares, key grants, wrapped keys, the chained audit log, mod grants, the
 * invariants every backend keeps, transactions, durability across reopen (when the fixture
 * can reopen), and close.
 */
export function runRelayStoreSuite(name: string, setup: RelayStoreSetup): void {
  describe(name, () => {
    let fixture: RelayStoreFixture;
    let open: RelayStore[] = [];
    const store = (): RelayStore => fixture.subject;

    beforeEach(async () => {
      fixture = await setup();
      open = [fixture.subject];
    });
    afterEach(async () => {
      for (const s of open) await s.close();
      await fixture.teardown?.();
    });

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

    it('creates objects once, updates and deletes them', async () => {
      const name = `USER_PUBLIC/${ALICE}/profile`;
      expect(await store().createObject(object(name))).toEqual(object(name));
      // The existing object wins over a second create.
      expect(await store().createObject({ ...object(name, BOB), read: 0 })).toEqual(object(name));
      expect(await store().updateObject(name, { read: 1, updatedAt: 20 })).toEqual({
        ...object(name),
        read: 1,
        updatedAt: 20,
      });
      expect(await store().getObject(name)).toEqual({ ...object(name), read: 1, updatedAt: 20 });
      expect(await store().updateObject('PUBLIC_RW/_/none', { read: 1 })).toBeNull();
      expect(await store().deleteObject(name)).toBe(true);
      expect(await store().deleteObject(name)).toBe(false);
      expect(await store().getObject(name)).toBeNull();
    });

    it('lists objects by prefix in name order, page by page', async () => {
      const names = [
        'PUBLIC_RW/_/b',
        'PUBLIC_RW/_/a',
        'PUBLIC_RW/_/a/x',
        'PUBLIC_READ/_/a',
        'PUBLIC_RW/_/c',
        'PUBLIC_RWX/_/a',
      ];
      for (const n of names) await store().createObject(object(n, SYSTEM_OWNER));
      const all = await store().listObjects({ prefix: 'PUBLIC_RW/_/', limit: 100 });
      expect(all.map((o) => o.name)).toEqual([
        'PUBLIC_RW/_/a',
        'PUBLIC_RW/_/a/x',
        'PUBLIC_RW/_/b',
        'PUBLIC_RW/_/c',
      ]);
      const first = await store().listObjects({ prefix: 'PUBLIC_RW/_/', limit: 2 });
      expect(first.map((o) => o.name)).toEqual(['PUBLIC_RW/_/a', 'PUBLIC_RW/_/a/x']);
      const second = await store().listObjects({
        prefix: 'PUBLIC_RW/_/',
        after: 'PUBLIC_RW/_/a/x',
        limit: 2,
      });
      expect(second.map((o) => o.name)).toEqual(['PUBLIC_RW/_/b', 'PUBLIC_RW/_/c']);
      expect(await store().listObjects({ prefix: 'PUBLIC_RW/_/', after: 'PUBLIC_RW/_/c', limit: 2 })).toEqual(
        [],
      );
      expect(await store().listObjects({ prefix: 'SERVER_SCOPE/', limit: 5 })).toEqual([]);
    });

    it("lists an owner's objects by prefix in name order, page by page, and nobody else's", async () => {
      for (const n of ['blob/c', 'blob/a', 'blob/e', 'PUBLIC_RW/_/a']) await store().createObject(object(n));
      for (const n of ['blob/b', 'blob/d']) await store().createObject(object(n, BOB));
      const mine = await store().listObjectsOfOwner(ALICE, { prefix: 'blob/', limit: 100 });
      expect(mine.map((o) => o.name)).toEqual(['blob/a', 'blob/c', 'blob/e']);
      expect(mine[0]).toEqual(object('blob/a'));
      const first = await store().listObjectsOfOwner(ALICE, { prefix: 'blob/', limit: 2 });
      expect(first.map((o) => o.name)).toEqual(['blob/a', 'blob/c']);
      const second = await store().listObjectsOfOwner(ALICE, { prefix: 'blob/', after: 'blob/c', limit: 2 });
      expect(second.map((o) => o.name)).toEqual(['blob/e']);
      expect(
        (await store().listObjectsOfOwner(BOB, { prefix: 'blob/', limit: 10 })).map((o) => o.name),
      ).toEqual(['blob/b', 'blob/d']);
      expect(
        await store().listObjectsOfOwner('user_00000000000000c0', { prefix: 'blob/', limit: 10 }),
      ).toEqual([]);
      // An owner change moves the object to its new owner's listing.
      await store().updateObject('blob/a', { owner: BOB });
      expect(
        (await store().listObjectsOfOwner(ALICE, { prefix: 'blob/', limit: 10 })).map((o) => o.name),
      ).toEqual(['blob/c', 'blob/e']);
    });

    it('stores raw blob bytes with compare-and-set versions', async () => {
      const name = 'blob/notes';
      const create = object(name);
      const bytes = new Uint8Array([1, 2, 3]);
      const v1 = await store().putBlobData(name, { data: bytes, expectedVersion: 0, create, now: 50 });
      expect(v1).toMatchObject({ owner: ALICE, size: 3, version: 1, updatedAt: 50, createdAt: 10 });
      bytes[0] = 99; // the store kept its own copy
      expect(await store().getBlobData(name)).toEqual(new Uint8Array([1, 2, 3]));
      await expectKind(
        store().putBlobData(name, { data: bytes, expectedVersion: 0, create, now: 51 }),
        'PreconditionFailed',
      );
      await expectKind(
        store().putBlobData(name, { data: bytes, expectedVersion: 2, create, now: 51 }),
        'PreconditionFailed',
      );
      const v2 = await store().putBlobData(name, {
        data: new Uint8Array(0),
        create: object(name, BOB),
        now: 60,
      });
      expect(v2).toMatchObject({ owner: ALICE, size: 0, version: 2 });
      expect(await store().getBlobData(name)).toEqual(new Uint8Array(0));
      const big = new Uint8Array(3 * 1024 * 1024).fill(7);
      await store().putBlobData(name, { data: big, expectedVersion: 2, create, now: 70 });
      expect((await store().getBlobData(name))?.byteLength).toBe(big.byteLength);
      expect(await store().getBlobData('blob/other')).toBeNull();
    });

    it('never gives a blob name a version it had before, across deletion', async () => {
      const name = 'blob/notes';
      const put = (expectedVersion?: number) =>
        store().putBlobData(name, {
          data: new Uint8Array([1]),
          expectedVersion,
          create: object(name),
          now: 50,
        });
      expect((await put(0)).version).toBe(1);
      expect((await put(1)).version).toBe(2);
      expect(await store().deleteObject(name)).toBe(true);
      // Created again: "must not exist" holds, and the version goes on past the deleted one's.
      expect((await put(0)).version).toBe(3);
      await expectKind(put(1), 'PreconditionFailed');
      await expectKind(put(2), 'PreconditionFailed');
      // Likewise for an object created without raw bytes (a collaborative blob).
      await store().deleteObject(name);
      await store().createObject(object(name));
      expect((await store().getObject(name))?.version).toBe(0);
      expect((await put(0)).version).toBe(4);
    });

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

    it('appends a hash chain to the audit log and queries it', async () => {
      const event = (target: string, ts: number) =>
        store().appendAudit((head) => sealEntry(head, { accessor: BOB, target }, ts));
      expect(await store().auditHead()).toBeNull();
      const first = await event(ALICE, 100);
      expect(first).toMatchObject({ seq: 1, id: `AUDIT::${BOB}::${ALICE}::100`, prevHash: GENESIS_HASH });
      const second = await event(BOB, 200);
      await event(ALICE, 300);
      expect(second.prevHash).toBe(first.hash);
      expect(await store().auditHead()).toEqual({
        seq: 3,
        hash: (await store().queryAudit({ afterSeq: 2 }))[0]?.hash,
      });
      expect((await store().queryAudit({ target: ALICE })).map((e) => e.seq)).toEqual([1, 3]);
      expect((await store().queryAudit({ since: 200 })).map((e) => e.seq)).toEqual([2, 3]);
      expect((await store().queryAudit({ afterSeq: 1, limit: 1 })).map((e) => e.seq)).toEqual([2]);
      expect(await store().queryAudit({ limit: 0 })).toEqual([]);
      expect(await auditChain(store())).toHaveLength(3);
    });

    it('refuses audit entries that do not follow the head, and appends nothing for a seal that throws', async () => {
      const first = await store().appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE }, 1));
      // A seq that skips ahead, one that repeats, and a prevHash that is not the head's.
      await expectKind(
        store().appendAudit((head) => ({ ...sealEntry(head, { accessor: BOB, target: ALICE }, 2), seq: 9 })),
        'Conflict',
      );
      await expectKind(
        store().appendAudit(() => first),
        'Conflict',
      );
      await expectKind(
        store().appendAudit((head) => ({
          ...sealEntry(head, { accessor: BOB, target: ALICE }, 2),
          prevHash: GENESIS_HASH,
        })),
        'Conflict',
      );
      const boom = new Error('seal failed');
      await expect(
        store().appendAudit(() => {
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await store().auditHead()).toEqual({ seq: 1, hash: first.hash });
      await store().appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE }, 3));
      expect(await auditChain(store())).toHaveLength(2);
    });

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

    describe('transaction', () => {
      it('hands out every method of the contract on tx', async () => {
        await store().transaction(async (tx) => {
          for (const method of RELAY_STORE_TX_METHODS) expect(typeof tx[method]).toBe('function');
        });
      });

      it('commits everything done through tx together and resolves with what fn resolves with', async () => {
        await store().createUser(user(ALICE), key('h1', ALICE));
        const result = await store().transaction(async (tx) => {
          await tx.createUser({ ...user(BOB), signPk: null }, key('h2', BOB));
          await tx.addKey(key('h3', ALICE));
          await tx.createObject(object('blob/t'));
          await tx.putBlobData('blob/t', { data: new Uint8Array([7]), create: object('blob/t'), now: 2 });
          await tx.putShare(share('t', 'read_write', 3));
          await tx.appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE }, 4));
          return 'done';
        });
        expect(result).toBe('done');
        expect((await store().getUser(BOB))?.userId).toBe(BOB);
        expect((await store().getKey('h3'))?.userId).toBe(ALICE);
        expect(await store().getBlobData('blob/t')).toEqual(new Uint8Array([7]));
        expect(await store().listShares('t')).toEqual([share('t', 'read_write', 3)]);
        expect(await auditChain(store())).toHaveLength(1);
      });

      it('rolls back writes of every kind when fn throws, and passes the error through', async () => {
        // The state before: one of everything, so that updates and deletions have something to undo.
        await store().createUser(user(ALICE), key('h1', ALICE));
        await store().putBlobData('blob/kept', {
          data: new Uint8Array([1]),
          create: object('blob/kept'),
          now: 1,
        });
        await store().putShare(share('kept', 'read_only', 1));
        await store().putKeyGrant(keyGrant('kept', BOB, 1));
        await store().putWrappedKey(wrappedKey('blob/kept', 'aa', 1));
        await store().appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE }, 1));
        await store().replaceGrants('Chat', [{ source: 'Chat', target: 'Scores', permission: 'read' }]);
        const snapshot = async (s: RelayStore) => ({
          users: [await s.getUser(ALICE), await s.getUser(BOB), await s.countUsers()],
          keys: [await s.getKey('h1'), await s.getKey('h2'), await s.getKey('h9')],
          objects: await s.listObjects({ prefix: '', limit: 100 }),
          bytes: [await s.getBlobData('blob/kept'), await s.getBlobData('blob/new')],
          shares: [await s.listShares('kept'), await s.listShares('new')],
          keyGrants: [await s.listKeyGrants('kept'), await s.listKeyGrants('new')],
          wrapped: [await s.listWrappedKeys('blob/kept'), await s.listWrappedKeys('blob/new')],
          audit: [await s.auditHead(), await s.queryAudit({})],
          grants: await s.listGrants(),
        });
        const before = await snapshot(store());
        const boom = new Error('changed my mind');
        const failing = store().transaction(async (tx) => {
          await tx.createUser({ ...user(BOB), signPk: 'Ym9i' }, key('h2', BOB));
          await tx.addKey(key('h9', ALICE));
          await tx.revokeKey('h1', 5);
          await tx.setUserLevel(ALICE, Level.Admin);
          await tx.setUserKeys(ALICE, { signPk: null, boxPk: 'Ym94' });
          await tx.putBlobData('blob/new', { data: new Uint8Array([2]), create: object('blob/new'), now: 5 });
          await tx.putBlobData('blob/kept', {
            data: new Uint8Array([3]),
            create: object('blob/kept'),
            now: 5,
          });
          await tx.updateObject('blob/kept', { encrypted: true, minEpoch: 4 });
          await tx.putShare(share('new', 'read_write', 5));
          await tx.putKeyGrant(keyGrant('new', BOB, 2));
          await tx.putWrappedKey(wrappedKey('blob/new', 'bb', 2));
          await tx.deleteShare('kept', BOB);
          await tx.appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE }, 5));
          await tx.replaceGrants('Chat', []);
          await tx.replaceGrants('Scores', [{ source: 'Scores', target: 'Chat', permission: 'full' }]);
          await tx.deleteObject('blob/kept');
          throw boom;
        });
        await expect(failing).rejects.toBe(boom);
        expect(await snapshot(store())).toEqual(before);
        // The store goes on from the state before: no seq or key was taken by the rollback.
        expect(
          (
            await store().putBlobData('blob/kept', {
              data: new Uint8Array([4]),
              create: object('blob/kept'),
              now: 6,
            })
          ).version,
        ).toBeGreaterThan(1);
        await store().appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE }, 6));
        expect(await auditChain(store())).toHaveLength(2);
        await store().createUser({ ...user(BOB), signPk: 'Ym9i' }, key('h2', BOB));
      });

      it('rolls back when fn rejects without throwing, and when a write in it fails', async () => {
        const reason = new Error('rejected');
        await expect(
          store().transaction(async (tx) => {
            await tx.createObject(object('blob/a'));
            return Promise.reject(reason);
          }),
        ).rejects.toBe(reason);
        expect(await store().getObject('blob/a')).toBeNull();
        await store().createUser(user(ALICE), key('h1', ALICE));
        const failed = store().transaction(async (tx) => {
          await tx.createObject(object('blob/a'));
          await tx.createUser(user(BOB), key('h1', BOB)); // the key hash is taken: Conflict
        });
        await expectKind(failed, 'Conflict');
        expect(await store().getObject('blob/a')).toBeNull();
        expect(await store().getUser(BOB)).toBeNull();
      });

      it('lets fn catch a failed call and go on: that call changed nothing, the others commit', async () => {
        await store().createUser(user(ALICE), key('h1', ALICE));
        await store().transaction(async (tx) => {
          await tx.createObject(object('blob/a'));
          // Fails half way (the user row would be new, the key hash is not): nothing of it stays.
          await expectKind(tx.createUser({ ...user(BOB), signPk: null }, key('h1', BOB)), 'Conflict');
          await expectKind(
            tx.putBlobData('blob/a', {
              data: new Uint8Array([1]),
              expectedVersion: 3,
              create: object('blob/a'),
              now: 1,
            }),
            'PreconditionFailed',
          );
          expect(await tx.getUser(BOB)).toBeNull();
          await tx.createObject(object('blob/b'));
        });
        expect((await store().listObjects({ prefix: 'blob/', limit: 10 })).map((o) => o.name)).toEqual([
          'blob/a',
          'blob/b',
        ]);
        expect(await store().getUser(BOB)).toBeNull();
        expect(await store().countUsers()).toBe(1);
      });

      it('reads its own writes through tx', async () => {
        await store().transaction(async (tx) => {
          await tx.createUser(user(ALICE), key('h1', ALICE));
          expect(await tx.getUser(ALICE)).toEqual(user(ALICE));
          expect((await tx.findUserBySignPk('c2lnbg'))?.userId).toBe(ALICE);
          expect(await tx.countUsers()).toBe(1);
          await tx.putBlobData('blob/a', { data: new Uint8Array([1, 2]), create: object('blob/a'), now: 1 });
          expect(await tx.getBlobData('blob/a')).toEqual(new Uint8Array([1, 2]));
          expect(await tx.getObject('blob/a')).toMatchObject({ size: 2, version: 1 });
          expect((await tx.listObjects({ prefix: 'blob/', limit: 5 })).map((o) => o.name)).toEqual([
            'blob/a',
          ]);
          await tx.putShare(share('a', 'read_only', 1));
          await tx.putKeyGrant(keyGrant('a', BOB, 1));
          expect(await tx.listShares('a')).toHaveLength(1);
          expect(await tx.deleteShare('a', BOB)).toBe(true);
          expect(await tx.listKeyGrants('a')).toEqual([]);
          const entry = await tx.appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE }, 1));
          expect(await tx.auditHead()).toEqual({ seq: 1, hash: entry.hash });
          expect(await tx.queryAudit({})).toEqual([entry]);
          expect(await tx.deleteObject('blob/a')).toBe(true);
          expect(await tx.getBlobData('blob/a')).toBeNull();
        });
      });

      it('is never seen half done by a call made while it waits', async () => {
        const waiting = deferred();
        const release = deferred();
        const tx = store().transaction(async (t) => {
          await t.createObject(object('PUBLIC_RW/_/tx-1'));
          waiting.resolve();
          await release.promise;
          await t.createObject(object('PUBLIC_RW/_/tx-2'));
        });
        await waiting.promise;
        const listing = store().listObjects({ prefix: 'PUBLIC_RW/_/', limit: 10 });
        const head = store().getObject('PUBLIC_RW/_/tx-1');
        await settle();
        release.resolve();
        await tx;
        // Each call sees the transaction before (nothing) or after (both), never one of the two.
        // The two calls overlap the commit, so each may fall on either side of it: a store need
        // not hold every outside call behind an open transaction (PostgreSQL does not).
        const names = (await listing).map((o) => o.name);
        expect([[], ['PUBLIC_RW/_/tx-1', 'PUBLIC_RW/_/tx-2']]).toContainEqual(names);
        const found = await head;
        expect(found === null || found.name === 'PUBLIC_RW/_/tx-1').toBe(true);
      });

      it('keeps a write made outside while it waits, even when it rolls back', async () => {
        const waiting = deferred();
        const release = deferred();
        const boom = new Error('roll back');
        const tx = store().transaction(async (t) => {
          await t.createObject(object('PUBLIC_RW/_/inside'));
          waiting.resolve();
          await release.promise;
          throw boom;
        });
        await waiting.promise;
        const outside = store().createObject(object('PUBLIC_RW/_/outside'));
        await settle();
        release.resolve();
        await expect(tx).rejects.toBe(boom);
        await outside;
        expect(await store().getObject('PUBLIC_RW/_/inside')).toBeNull();
        expect(await store().getObject('PUBLIC_RW/_/outside')).toEqual(object('PUBLIC_RW/_/outside'));
      });

      it('never loses an update when transactions read, wait and write the same object concurrently', async () => {
        const name = 'PUBLIC_RW/_/counter';
        await store().createObject(object(name));
        const increment = () =>
          store().transaction(async (tx) => {
            const current = (await tx.getObject(name))?.minEpoch ?? 0;
            await settle(); // every other transaction gets its chance to interleave here
            return tx.updateObject(name, { minEpoch: current + 1 });
          });
        const results = await Promise.all(Array.from({ length: 8 }, increment));
        expect(results.map((r) => r?.minEpoch).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([
          1, 2, 3, 4, 5, 6, 7, 8,
        ]);
        expect((await store().getObject(name))?.minEpoch).toBe(8);
      });

      it('appends to the audit log inside a transaction, in one chain with appends outside', async () => {
        const release = deferred();
        const waiting = deferred();
        const tx = store().transaction(async (t) => {
          await t.appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE, action: 'tx-1' }, 1));
          waiting.resolve();
          await release.promise;
          await t.appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE, action: 'tx-2' }, 2));
        });
        await waiting.promise;
        const outside = store().appendAudit((head) =>
          sealEntry(head, { accessor: BOB, target: ALICE, action: 'outside' }, 3),
        );
        await settle();
        release.resolve();
        await tx;
        expect((await outside).seq).toBe(3);
        expect((await auditChain(store())).map((e) => e.action)).toEqual(['tx-1', 'tx-2', 'outside']);
        // A rolled-back append leaves the head where it was.
        await expect(
          store().transaction(async (t) => {
            await t.appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE }, 4));
            throw new Error('no');
          }),
        ).rejects.toThrow('no');
        expect((await store().auditHead())?.seq).toBe(3);
        await store().appendAudit((head) =>
          sealEntry(head, { accessor: BOB, target: ALICE, action: 'last' }, 5),
        );
        expect(await auditChain(store())).toHaveLength(4);
      });

      it('rejects with Internal a call on the store itself from inside fn, and tx after fn settled', async () => {
        let leaked: RelayStoreTx | undefined;
        await store().transaction(async (tx) => {
          leaked = tx;
          await tx.createUser(user(ALICE), key('h1', ALICE));
          await expectKind(store().getUser(ALICE), 'Internal');
          await expectKind(store().createObject(object('blob/x')), 'Internal');
          await expectKind(
            store().transaction(async () => undefined),
            'Internal',
          );
        });
        expect(await store().getUser(ALICE)).toEqual(user(ALICE));
        expect(await store().getObject('blob/x')).toBeNull();
        if (!leaked) throw new Error('fn did not run');
        await expectKind(leaked.getUser(ALICE), 'Internal');
        await expectKind(leaked.createObject(object('blob/x')), 'Internal');
        expect(await store().getObject('blob/x')).toBeNull();
      });

      it('lets close wait for an open transaction, then rejects transactions with Unavailable', async () => {
        const waiting = deferred();
        const release = deferred();
        const tx = store().transaction(async (t) => {
          waiting.resolve();
          await release.promise;
          await t.createObject(object('blob/late'));
          return 'committed';
        });
        await waiting.promise;
        const closing = store().close();
        await settle();
        release.resolve();
        expect(await tx).toBe('committed');
        await closing;
        await expectKind(
          store().transaction(async () => undefined),
          'Unavailable',
        );
        if (fixture.reopen) {
          const again = await fixture.reopen();
          open.push(again);
          expect(await again.getObject('blob/late')).toEqual(object('blob/late'));
        }
      });
    });

    it('keeps everything across a reopen', async (context) => {
      if (!fixture.reopen) {
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
      const again = await fixture.reopen();
      open.push(again);
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
  });
}
