import type { IncomingMessage } from 'node:http';
import {
  blobAddress,
  type Caller,
  docAddress,
  isSyncError,
  Level,
  SYSTEM_OWNER,
  type UserId,
} from '@scopesync/core';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { AccessControl } from './access-control.ts';
import { AuditLog, verifyAuditChain } from './audit-log.ts';
import { hashApiKey, registerDevice } from './credentials.ts';
import { MemoryRelayStore } from './memory-relay-store.ts';
import { Metrics } from './metrics.ts';

const withKey = (key: string): IncomingMessage =>
  ({ headers: { 'x-api-key': key }, url: '/' }) as unknown as IncomingMessage;

describe('AccessControl', () => {
  let store: MemoryRelayStore;
  let access: AccessControl;
  let alice: { key: string; userId: UserId };
  let bob: { key: string; userId: UserId };
  let now: number;

  beforeEach(async () => {
    store = new MemoryRelayStore();
    now = 1_000;
    access = new AccessControl({
      store,
      audit: new AuditLog({ store, now: () => now }),
      metrics: new Metrics(),
      now: () => now,
    });
    alice = await registerDevice(store, { deviceName: 'alice' });
    bob = await registerDevice(store, { deviceName: 'bob' });
  });

  const userOf = (u: { userId: UserId }, level: Level = Level.User): Caller => ({
    kind: 'user',
    userId: u.userId,
    level,
  });

  it('authenticates keys, treats no key as Guest and refuses unknown or revoked keys', async () => {
    expect(await access.authenticate(withKey(alice.key))).toEqual({
      kind: 'user',
      userId: alice.userId,
      level: Level.User,
    });
    expect(await access.authenticate({ headers: {}, url: '/sync' } as unknown as IncomingMessage)).toEqual({
      kind: 'guest',
    });
    const unknown = await access.authenticate(withKey('x'.repeat(43))).catch((e: unknown) => e);
    expect(isSyncError(unknown, 'Unauthorized')).toBe(true);
    await store.revokeKey(hashApiKey(alice.key), 5);
    const revoked = await access.authenticateKey(alice.key).catch((e: unknown) => e);
    expect(isSyncError(revoked, 'Unauthorized')).toBe(true);
  });

  it('creates objects on the first write with the scope defaults and the namespace owner', async () => {
    const address = docAddress('USER_PUBLIC', alice.userId, 'profile');
    expect((await access.prepareWrite(userOf(alice), address)).after).toEqual({
      owner: alice.userId,
      read: 2,
      write: 1,
    });
    // The owner narrows; someone else may not change the flags.
    expect((await access.prepareWrite(userOf(alice), address, { read: 1 })).after).toEqual({
      owner: alice.userId,
      read: 1,
      write: 1,
    });
    const refused = await access
      .prepareWrite(userOf(bob, Level.Moderator), address, { read: 2 })
      .catch((e: unknown) => e);
    expect(isSyncError(refused, 'Forbidden')).toBe(true);
    const tooWide = await access
      .prepareWrite(userOf(alice), docAddress('USER_PRIVATE', alice.userId, 'k'), { read: 2 })
      .catch((e: unknown) => e);
    expect(isSyncError(tooWide, 'BadRequest')).toBe(true);
    expect(
      (await access.prepareWrite({ kind: 'runtime' }, docAddress('SERVER_SCOPE', '_', 'motd'))).after,
    ).toEqual({
      owner: SYSTEM_OWNER,
      read: 0,
      write: 0,
    });
  });

  it('decides with the stored flags and shares, and audits cross-user access and denials', async () => {
    const draft = docAddress('USER_PUBLIC', alice.userId, 'draft');
    await access.prepareWrite(userOf(alice), draft, { read: 1 });
    const hidden = await access.check(userOf(bob), 'read', draft, { channel: 'http' });
    expect(hidden.decision).toMatchObject({ allowed: false, hideExistence: true });
    const own = await access.check(userOf(alice), 'read', draft, { channel: 'http' });
    expect(own.decision.allowed).toBe(true);

    const blob = blobAddress('notes');
    await access.prepareWrite(userOf(alice), blob);
    expect((await access.check(userOf(bob), 'read', blob)).decision.allowed).toBe(false);
    await store.putShare({
      blobId: 'notes',
      userId: bob.userId,
      level: 'read_only',
      grantedBy: alice.userId,
      grantedAt: 1,
    });
    const shared = await access.check(userOf(bob), 'read', blob);
    expect(shared.decision.allowed).toBe(true);
    expect(shared.object?.shares?.get(bob.userId)).toBe('read_only');
    expect((await access.check(userOf(bob), 'write', blob)).decision.allowed).toBe(false);

    const entries = await store.queryAudit({});
    expect(entries.map((e) => [e.accessor, e.target, e.action, e.result, e.channel])).toEqual([
      [bob.userId, alice.userId, 'read', 'denied', 'http'],
      [bob.userId, alice.userId, 'read', 'denied', 'ws'],
      [bob.userId, alice.userId, 'read', 'ok', 'ws'],
      [bob.userId, alice.userId, 'write', 'denied', 'ws'],
    ]);
    expect(await verifyAuditChain(store)).toMatchObject({ ok: true, entries: 4 });
  });

  it('decides a later check of the same decision on the object the first one read, and audits it as usual', async () => {
    const blob = blobAddress('shared');
    await access.prepareWrite(userOf(alice), blob);
    await store.putShare({
      blobId: 'shared',
      userId: bob.userId,
      level: 'read_only',
      grantedBy: alice.userId,
      grantedAt: 1,
    });
    const read = await access.check(userOf(bob), 'read', blob, { audit: false });
    expect(read).toMatchObject({ decision: { allowed: true }, encrypted: false });
    const reads = vi.spyOn(store, 'getObject');
    const shares = vi.spyOn(store, 'listShares');
    const write = await access.check(userOf(bob), 'write', blob, { loaded: read });
    const audited = await access.check(userOf(bob), 'read', blob, { loaded: read });
    expect(reads).not.toHaveBeenCalled();
    expect(shares).not.toHaveBeenCalled();
    expect(write).toMatchObject({ decision: { allowed: false }, object: read.object, encrypted: false });
    expect(audited.decision.allowed).toBe(true);
    const absent = await access.check(userOf(bob), 'read', blobAddress('none'), { audit: false });
    expect(await access.check(userOf(bob), 'write', blobAddress('none'), { loaded: absent })).toEqual({
      decision: expect.objectContaining({ allowed: true }),
      object: null,
    });
    const entries = await store.queryAudit({});
    expect(entries.map((e) => [e.accessor, e.action, e.result])).toEqual([
      [bob.userId, 'write', 'denied'],
      [bob.userId, 'read', 'ok'],
    ]);
  });

  it('appends a repeated denial once per window, with the count of the repeats, so guests cannot fill the log', async () => {
    const draft = docAddress('USER_PRIVATE', alice.userId, 'draft');
    await access.prepareWrite(userOf(alice), draft);
    const guest: Caller = { kind: 'guest' };
    for (let i = 0; i < 200; i++)
      expect((await access.check(guest, 'read', draft)).decision.allowed).toBe(false);
    // Another target is its own entry.
    const other = docAddress('USER_PRIVATE', alice.userId, 'other');
    await access.prepareWrite(userOf(alice), other);
    await access.check(guest, 'read', other);
    let entries = await store.queryAudit({});
    expect(entries.filter((e) => e.accessor === 'guest')).toHaveLength(2);
    now += 61_000;
    await access.check(guest, 'read', draft);
    entries = await store.queryAudit({});
    const guests = entries.filter((e) => e.accessor === 'guest' && e.key === 'draft');
    expect(guests).toHaveLength(2);
    expect(guests[1]?.reason).toMatch(/\+199 repeats not logged/);

    // Spread over many targets, one caller still appends a bounded number of entries.
    const many = Array.from({ length: 100 }, (_, i) => docAddress('USER_PRIVATE', alice.userId, `n${i}`));
    for (const address of many) await access.prepareWrite(userOf(alice), address);
    for (const address of many) await access.check(guest, 'read', address);
    const before = entries.length;
    entries = await store.queryAudit({});
    expect(entries.length - before).toBeLessThanOrEqual(50);
    expect(await verifyAuditChain(store)).toMatchObject({ ok: true });
  });

  it('refreshes updatedAt on writes at most once a second', async () => {
    const address = docAddress('PUBLIC_RW', '_', 'board');
    await access.prepareWrite({ kind: 'guest' }, address);
    now += 10;
    await access.prepareWrite({ kind: 'guest' }, address);
    expect((await store.getObject(address.name))?.updatedAt).toBe(1_000);
    now += 2_000;
    await access.prepareWrite({ kind: 'guest' }, address);
    expect((await store.getObject(address.name))?.updatedAt).toBe(3_010);
  });

  it('decides a write that leaves the object as it is, and leaves every other write to prepareWrite', async () => {
    const board = docAddress('USER_PUBLIC', alice.userId, 'board');
    // Absent: the write would create it.
    expect(await access.checkUnchangingWrite(userOf(alice), board, {}, 'ws')).toBeNull();
    await access.prepareWrite(userOf(alice), board);
    // Other flags, allowed or not, change the object: only the locked path may record them.
    expect(await access.checkUnchangingWrite(userOf(alice), board, { read: 1 }, 'ws')).toBeNull();
    expect(
      await access.checkUnchangingWrite(userOf(bob, Level.Moderator), board, { read: 1 }, 'ws'),
    ).toBeNull();

    // The same flags: decided and audited like check(), and updatedAt alone refreshed once stale.
    now += 2_000;
    const staff = await access.checkUnchangingWrite(userOf(bob, Level.Moderator), board, { read: 2 }, 'ws');
    expect(staff).toMatchObject({ allowed: true, crossUser: true });
    expect(await store.getObject(board.name)).toMatchObject({ read: 2, write: 1, updatedAt: 3_000 });
    const refused = await access.checkUnchangingWrite(userOf(bob), board, {}, 'ws');
    expect(refused).toMatchObject({ allowed: false });
    const entries = await store.queryAudit({});
    expect(entries.map((e) => [e.accessor, e.action, e.result, e.channel])).toEqual([
      [bob.userId, 'write', 'ok', 'ws'],
      [bob.userId, 'write', 'denied', 'ws'],
    ]);
  });
});
