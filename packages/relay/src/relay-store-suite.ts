import {
  type ErrorKind,
  isSyncError,
  Level,
  type ObjectRecord,
  type RelayStore,
  type ShareLevel,
  type ShareRecord,
  SYSTEM_OWNER,
  type UserRecord,
} from '@scopesync/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sealAuditEntry, verifyAuditChain } from './audit-log.ts';

/** What a {@link RelayStoreSetup} hands to {@link runRelayStoreSuite} for one test. */
export interface RelayStoreFixture {
  /** A fresh, empty store. The suite closes it after the test. */
  readonly subject: RelayStore;
  /** Opens a new store over the same data, after the suite closed `subject`. Omit for stores that keep nothing. */
  readonly reopen?: () => Promise<RelayStore>;
  /** Releases files and directories, after every store of the test is closed. */
  readonly teardown?: () => Promise<void>;
}

/** Creates the store under test; called once per test. */
export type RelayStoreSetup = () => Promise<RelayStoreFixture>;

/** What the store under test promises beyond the contract. */
export interface RelayStoreSuiteOptions {
  /** The store keeps its data across close and `reopen` (checked by a durability test). */
  readonly durable?: boolean;
}

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

async function expectKind(promise: Promise<unknown>, kind: ErrorKind): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isSyncError(error, kind), `expected SyncError(${kind}), got ${String(error)}`).toBe(true);
}

/**
 * Registers a Vitest `describe(name)` block that checks a {@link RelayStore} against its
 * contract: users and key hashes, object metadata and raw blob bytes with versions,
 * shares, the chained audit log, mod grants, durability across reopen, and close.
 */
export function runRelayStoreSuite(
  name: string,
  setup: RelayStoreSetup,
  options: RelayStoreSuiteOptions = {},
): void {
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
        store().appendAudit((head) =>
          sealAuditEntry(
            head,
            {
              accessor: BOB,
              target,
              scope: 'USER_PUBLIC',
              key: 'profile',
              action: 'read',
              result: 'ok',
              channel: 'http',
              reason: 'USER_PUBLIC is readable by everyone',
            },
            ts,
          ),
        );
      expect(await store().auditHead()).toBeNull();
      const first = await event(ALICE, 100);
      expect(first).toMatchObject({ seq: 1, id: `AUDIT::${BOB}::${ALICE}::100`, prevHash: '0'.repeat(64) });
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
      expect(await verifyAuditChain(store())).toEqual({ ok: true, entries: 3 });
      // A seal that does not follow the head is refused and leaves the log as it was.
      await expectKind(
        store().appendAudit((head) => ({ ...sealAuditEntry(head, { ...first }, 400), seq: 9 })),
        'Conflict',
      );
      expect((await store().auditHead())?.seq).toBe(3);
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

    const itDurable = options.durable === true ? it : undefined;
    itDurable?.('keeps everything across a reopen', async () => {
      if (!fixture.reopen) throw new Error('runRelayStoreSuite: a durable store needs reopen');
      await store().createUser(user(ALICE), { keyHash: 'h1', userId: ALICE, createdAt: 1, revokedAt: null });
      await store().putBlobData('blob/b', { data: new Uint8Array([4, 5]), create: object('blob/b'), now: 2 });
      await store().putShare(share('b', 'read_only', 3));
      await store().updateObject('blob/b', { encrypted: true, minEpoch: 2 });
      const keyGrant = {
        blobId: 'b',
        userId: BOB,
        epoch: 2,
        sealedKey: new Uint8Array([1]),
        grant: new Uint8Array([2]),
        grantedBy: ALICE,
        grantedAt: 3,
      };
      await store().putKeyGrant(keyGrant);
      await store().appendAudit((head) =>
        sealAuditEntry(
          head,
          {
            accessor: 'guest',
            target: ALICE,
            scope: 'blob',
            key: 'b',
            action: 'read',
            result: 'denied',
            channel: 'ws',
            reason: 'no',
          },
          4,
        ),
      );
      await store().putBlobData('blob/gone', {
        data: new Uint8Array([1]),
        create: object('blob/gone'),
        now: 5,
      });
      await store().deleteObject('blob/gone');
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
      expect(await again.getBlobData('blob/b')).toEqual(new Uint8Array([4, 5]));
      expect(await again.listShares('b')).toHaveLength(1);
      expect(await again.getObject('blob/b')).toMatchObject({ encrypted: true, minEpoch: 2 });
      expect(await again.listKeyGrants('b', BOB)).toEqual([keyGrant]);
      expect((await again.findUserBySignPk('c2lnbg'))?.userId).toBe(ALICE);
      expect(await verifyAuditChain(again)).toEqual({ ok: true, entries: 1 });
    });

    it('closes idempotently and then rejects with Unavailable', async () => {
      await store().close();
      await store().close();
      await expectKind(store().getUser(ALICE), 'Unavailable');
      await expectKind(
        store().appendAudit((head) => sealAuditEntry(head, {} as never, 1)),
        'Unavailable',
      );
    });
  });
}
