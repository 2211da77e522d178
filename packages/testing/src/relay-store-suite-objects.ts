import { SYSTEM_OWNER } from '@scopesync/core';
import { expect, it } from 'vitest';
import { expectKind } from './relay-store-suite-async.ts';
import type { RelayStoreSuiteContext } from './relay-store-suite-context.ts';
import { ALICE, BOB, object } from './relay-store-suite-records.ts';

// The relay store suite's tests of objects: their metadata, listings by prefix and by owner,
// and raw blob bytes with compare-and-set versions that never repeat.

/** Registers the tests of object metadata, object listings and raw blob bytes with their versions. */
export function objectTests({ store }: RelayStoreSuiteContext): void {
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
    expect(await store().listObjectsOfOwner('user_00000000000000c0', { prefix: 'blob/', limit: 10 })).toEqual(
      [],
    );
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
}
