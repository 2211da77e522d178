import { Level, RELAY_STORE_TX_METHODS, type RelayStore, type RelayStoreTx } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import { deferred, expectKind, settle } from './relay-store-suite-async.ts';
import { auditChain, sealEntry } from './relay-store-suite-audit-entries.ts';
import type { RelayStoreSuiteContext } from './relay-store-suite-context.ts';
import { ALICE, BOB, key, keyGrant, object, share, user, wrappedKey } from './relay-store-suite-records.ts';

// The relay store suite's tests of transactions: commit and rollback of every kind of write,
// isolation from calls made while one waits, no lost update, the audit chain across them, misuse
// of the store from inside one, and close waiting for an open one.

/** Registers the `transaction` block. */
export function transactionTests({ store, canReopen, reopen }: RelayStoreSuiteContext): void {
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
        expect((await tx.listObjects({ prefix: 'blob/', limit: 5 })).map((o) => o.name)).toEqual(['blob/a']);
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
      if (canReopen()) {
        const again = await reopen();
        expect(await again.getObject('blob/late')).toEqual(object('blob/late'));
      }
    });
  });
}
