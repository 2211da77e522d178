import type { IncomingMessage } from 'node:http';
import {
  type Action,
  type Address,
  blobAddress,
  type Caller,
  docAddress,
  Level,
  type RelayStore,
  type UserId,
} from '@scopesync/core';
import { SqliteRelayStore } from '@scopesync/store-sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AccessControl } from './access-control.ts';
import { AuditLog } from './audit-log.ts';
import { hashApiKey, registerDevice } from './credentials.ts';
import { instrumentRelayStore } from './instrumented-relay-store.ts';
import { MemoryRelayStore } from './memory-relay-store.ts';
import { Metrics } from './metrics.ts';

// An upgrade decided in the caller's turn (SQLite underneath): the same answers as the async
// path — the key read each time, a revoked key refused at once, the same decide() — and the
// async path whenever the store cannot answer at once.

const upgrade = (url: string, headers: Record<string, string> = {}): IncomingMessage =>
  ({ headers, url }) as unknown as IncomingMessage;

describe('AccessControl in the caller’s turn', () => {
  let raw: SqliteRelayStore;
  let store: RelayStore;
  let metrics: Metrics;
  let access: AccessControl;
  let alice: { key: string; userId: UserId };
  let bob: { key: string; userId: UserId };

  beforeEach(async () => {
    raw = new SqliteRelayStore({ path: ':memory:' });
    metrics = new Metrics();
    // As the relay sees its store: behind the metrics wrapper.
    store = instrumentRelayStore(
      raw,
      metrics.histogram('scopesync_relay_store_seconds', 'Store call latency.'),
    );
    access = new AccessControl({ store, audit: new AuditLog({ store }), metrics });
    alice = await registerDevice(store, { deviceName: 'alice' });
    bob = await registerDevice(store, { deviceName: 'bob' });
  });

  afterEach(() => raw.close());

  const userOf = (u: { userId: UserId }): Caller => ({ kind: 'user', userId: u.userId, level: Level.User });

  it('authenticates an upgrade’s key at once, and refuses it at once once revoked', async () => {
    const observed = (): number =>
      Number(/scopesync_relay_store_seconds_count (\d+)/.exec(metrics.render())?.[1] ?? Number.NaN);
    const before = observed();
    const request = upgrade(`/sync/PUBLIC_RW/_/a?key=${alice.key}`);
    expect(access.authenticateNow(request)).toEqual({
      caller: userOf(alice),
      credential: hashApiKey(alice.key),
    });
    expect(access.authenticateNow(upgrade('/sync', { 'x-api-key': bob.key }))?.caller).toEqual(userOf(bob));
    expect(access.authenticateNow(upgrade('/sync/PUBLIC_RW/_/a'))).toEqual({
      caller: { kind: 'guest' },
      credential: null,
    });

    await store.revokeKey(hashApiKey(alice.key), 5);
    expect(() => access.authenticateNow(request)).toThrow(expect.objectContaining({ kind: 'Unauthorized' }));
    expect(() => access.authenticateNow(upgrade(`/sync?key=${'x'.repeat(43)}`))).toThrow(
      expect.objectContaining({ kind: 'Unauthorized' }),
    );
    // Each key was read from the store (four reads), each read observed by the metrics wrapper
    // (and the revocation, one call).
    expect(observed() - before).toBe(5);
  });

  it('leaves what it cannot answer at once to the async path, which says why', async () => {
    // A credential that is no API key (a token on a relay without tokens, garbage): the async path's message.
    const token = upgrade('/sync?key=eyJhbGciOiJIUzI1NiJ9.e30.sig');
    expect(access.authenticateNow(token)).toBeUndefined();
    await expect(access.authenticate(token)).rejects.toMatchObject({ kind: 'Unauthorized' });

    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tx = store.transaction(async () => held);
    const request = upgrade(`/sync?key=${alice.key}`);
    const address = docAddress('PUBLIC_RW', '_', 'a');
    try {
      expect(access.authenticateNow(request)).toBeUndefined();
      expect(access.probeNow(userOf(alice), 'read', address)).toBeUndefined();
    } finally {
      // Never leave the transaction open: close() would wait for it.
      release();
    }
    await tx;
    expect(access.authenticateNow(request)?.caller).toEqual(userOf(alice));
    const probed = access.probeNow(userOf(alice), 'read', address);
    expect(probed).toBeDefined();
    expect(probed).toEqual(await access.check(userOf(alice), 'read', address, { audit: false }));
  });

  it('probes with the same decide() as check, on the same object, and audits nothing', async () => {
    const draft = docAddress('USER_PUBLIC', alice.userId, 'draft');
    await access.prepareWrite(userOf(alice), draft, { read: 1 });
    const blob = blobAddress('notes');
    await access.prepareWrite(userOf(alice), blob);
    await store.putShare({
      blobId: 'notes',
      userId: bob.userId,
      level: 'read_only',
      grantedBy: alice.userId,
      grantedAt: 1,
    });
    const cases: Array<[Caller, Action, Address]> = [];
    for (const caller of [userOf(alice), userOf(bob), { kind: 'guest' } as const]) {
      for (const action of ['read', 'write'] as const) {
        for (const address of [draft, blob, docAddress('PUBLIC_RW', '_', 'absent'), blobAddress('absent')]) {
          cases.push([caller, action, address]);
        }
      }
    }
    for (const [caller, action, address] of cases) {
      const now = access.probeNow(caller, action, address);
      const later = await access.check(caller, action, address, { audit: false });
      expect(now, `${caller.kind} ${action} ${address.name}`).toEqual(later);
      // On the object an earlier check read: no second read, the same answer.
      expect(access.probeNow(caller, action, address, later)).toEqual(later);
    }
    expect(await store.queryAudit({})).toEqual([]);
  });

  it('answers nothing at once over a store without immediate reads (PostgreSQL, the memory store)', async () => {
    const memory = new MemoryRelayStore();
    const slow = new AccessControl({
      store: memory,
      audit: new AuditLog({ store: memory }),
      metrics: new Metrics(),
    });
    const carol = await registerDevice(memory, { deviceName: 'carol' });
    expect(slow.authenticateNow(upgrade(`/sync?key=${carol.key}`))).toBeUndefined();
    expect(slow.probeNow(userOf(carol), 'read', docAddress('PUBLIC_RW', '_', 'a'))).toBeUndefined();
    expect(slow.authenticateNow(upgrade('/sync'))?.caller).toEqual({ kind: 'guest' });
  });
});
