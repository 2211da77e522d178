import { type DocName, isSyncError, KeyedMutex, Level, MemoryDocStore, SYSTEM_OWNER } from '@scopesync/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AccessControl } from './access-control.ts';
import { AuditLog } from './audit-log.ts';
import { DocHub } from './documents/doc-hub.ts';
import { LocalEventBus } from './events/local-event-bus.ts';
import { MemoryRelayStore } from './memory-relay-store.ts';
import { Metrics } from './metrics.ts';
import { RelayRuntime } from './runtime.ts';
import { AccountService } from './services/account-service.ts';
import { ObjectService } from './services/object-service.ts';
import { readUserValue } from './userdata-value.ts';

describe('RelayRuntime', () => {
  let store: MemoryRelayStore;
  let hub: DocHub;
  let runtime: RelayRuntime;
  let refreshed: string[];

  beforeEach(() => {
    store = new MemoryRelayStore();
    const metrics = new Metrics();
    const audit = new AuditLog({ store });
    const access = new AccessControl({ store, audit, metrics });
    const bus = new LocalEventBus();
    hub = new DocHub({ store: new MemoryDocStore(), bus, metrics, log: () => undefined });
    refreshed = [];
    // What subscriptions would see, in order: an access change must come before the content.
    bus.on('access-changed', (event) => {
      refreshed.push(event.name);
    });
    bus.on('doc-updated', (event) => {
      refreshed.push(`update ${event.name}`);
    });
    const services = { access, store, hub, bus, locks: new KeyedMutex(), now: Date.now };
    runtime = new RelayRuntime({
      objects: new ObjectService(services),
      accounts: new AccountService(services),
      audit,
      store,
    });
  });
  afterEach(() => hub.close());

  it('writes authoritatively: system-owned, read 0 / write 0 unless told otherwise', async () => {
    const written = await runtime.set('SERVER_SCOPE/_/config', { maxPlayers: 8 });
    expect(written).toMatchObject({ value: { maxPlayers: 8 }, owner: SYSTEM_OWNER, read: 0, write: 0 });
    expect(written.version).toBeGreaterThan(0);
    expect(await runtime.get('SERVER_SCOPE/_/config')).toEqual(written);
    // The value lives in the document's data map, where sync clients see it.
    expect(await hub.read('SERVER_SCOPE/_/config' as DocName, readUserValue)).toEqual({ maxPlayers: 8 });
    // Creating re-decides subscriptions waiting for the object before its content goes out.
    expect(refreshed).toEqual(['SERVER_SCOPE/_/config', 'update SERVER_SCOPE/_/config']);
    refreshed.length = 0;
    const opened = await runtime.set('SERVER_SCOPE/_/config', { maxPlayers: 9 }, { read: 2 });
    expect(opened).toMatchObject({ read: 2, write: 0 });
    expect(refreshed).toEqual(['SERVER_SCOPE/_/config', 'update SERVER_SCOPE/_/config']);
    const stale = await runtime.set('SERVER_SCOPE/_/config', {}, { ifVersion: 1 }).catch((e: unknown) => e);
    expect(isSyncError(stale, 'PreconditionFailed')).toBe(true);
    expect(await runtime.list('SERVER_SCOPE', '_')).toEqual(['config']);
    expect(await runtime.delete('SERVER_SCOPE/_/config')).toBe(true);
    expect(await runtime.get('SERVER_SCOPE/_/config')).toBeNull();
    const encrypted = await runtime.get(`USER_PRIVATE/user_00000000000000a1/k`).catch((e: unknown) => e);
    expect(isSyncError(encrypted, 'BadRequest')).toBe(true);
  });

  it('acts on behalf of a user with that user’s permissions, audited', async () => {
    const alice = await runtime.createUser({ deviceName: 'alice' });
    const bob = await runtime.createUser({ deviceName: 'bob' });
    const as = (userId: string, level: Level = Level.User) => ({
      requestingUserId: userId,
      requestingUserLevel: level,
      targetUserId: alice.userId,
      scope: 'USER_PUBLIC',
      key: 'profile',
    });
    await runtime.setUserData({ ...as(alice.userId), value: { name: 'Ada' } });
    expect(await runtime.getUserData(as(bob.userId))).toMatchObject({
      value: { name: 'Ada' },
      owner: alice.userId,
      read: 2,
    });
    const refused = await runtime
      .setUserData({ ...as(bob.userId), value: { name: 'Bob' } })
      .catch((e: unknown) => e);
    expect(isSyncError(refused, 'Forbidden')).toBe(true);
    await runtime.setUserData({ ...as(bob.userId, Level.Moderator), value: { name: 'Ada (moderated)' } });
    await runtime.setUserData({ ...as(alice.userId), key: 'draft', value: { text: 'wip' }, read: 1 });
    expect(await runtime.getUserData({ ...as(bob.userId), key: 'draft' })).toBeNull();
    const audit = await store.queryAudit({ target: alice.userId });
    expect(audit.map((e) => [e.accessor, e.action, e.result, e.channel])).toEqual([
      [bob.userId, 'read', 'ok', 'runtime'],
      [bob.userId, 'write', 'denied', 'runtime'],
      [bob.userId, 'write', 'ok', 'runtime'],
      [bob.userId, 'read', 'denied', 'runtime'],
    ]);
  });

  it('gives mods their MOD_DATA and other mods’ data only through grants', async () => {
    const cloud = await runtime.registerMod({ name: 'CloudM' });
    const chat = await runtime.registerMod({
      name: 'Chat',
      grants: [{ target: 'CloudM', permission: 'read', keys: ['shared_config'] }],
    });
    await cloud.set('shared_config', { theme: 'dark' });
    await cloud.set('secret', { token: 'x' });
    expect(await cloud.get('shared_config')).toMatchObject({
      value: { theme: 'dark' },
      owner: SYSTEM_OWNER,
      read: 0,
    });
    expect(await chat.get('shared_config', { mod: 'CloudM' })).toMatchObject({ value: { theme: 'dark' } });
    for (const attempt of [
      () => chat.get('secret', { mod: 'CloudM' }),
      () => chat.set('shared_config', { theme: 'light' }, { mod: 'CloudM' }),
      () => chat.delete('shared_config', { mod: 'CloudM' }),
      () => cloud.get('anything', { mod: 'Chat' }),
    ]) {
      expect(isSyncError(await attempt().catch((e: unknown) => e), 'Forbidden')).toBe(true);
    }
    expect(await chat.list({ mod: 'CloudM' })).toEqual(['secret', 'shared_config']);
    expect(runtime.mod('Chat')).toBe(chat);
    expect(() => runtime.mod('Nope')).toThrow(/no mod/);
    const audit = await store.queryAudit({ target: 'mod:CloudM' });
    expect(audit.map((e) => [e.accessor, e.action, e.result])).toEqual([
      ['mod:Chat', 'read', 'ok'],
      ['mod:Chat', 'read', 'denied'],
      ['mod:Chat', 'write', 'denied'],
      ['mod:Chat', 'delete', 'denied'],
      ['mod:Chat', 'list', 'ok'],
    ]);
  });

  it('honours grant expiry', async () => {
    await runtime.registerMod({ name: 'Scores' });
    const late = await runtime.registerMod({
      name: 'Late',
      grants: [{ target: 'Scores', permission: 'full', expiresAt: 1 }],
    });
    const error = await late.get('top', { mod: 'Scores' }).catch((e: unknown) => e);
    expect(isSyncError(error, 'Forbidden') && error.message).toMatch(/expired/);
  });
});
