import { Level } from '@scopesync/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type TestUser, useTestRelay } from './support/start-test-relay.ts';

// DESIGN §1 Audit: every cross-user access and every denial appends a hash-chained entry;
// the target reads the entries about their data, admins read all.

const t = useTestRelay();
let alice: TestUser;
let bob: TestUser;
let mod: TestUser;
let admin: TestUser;

beforeAll(async () => {
  alice = await t.user('alice');
  bob = await t.user('bob');
  mod = await t.user('mod', Level.Moderator);
  admin = await t.user('admin', Level.Admin);
});

const api = t.api;
const entriesAbout = async (key: string, target?: string) =>
  (await api('GET', `/audit?limit=1000${target ? `&target=${target}` : ''}`, { key })).json.entries as {
    accessor: string;
    target: string;
    scope: string;
    key: string;
    action: string;
    result: string;
    channel: string;
    id: string;
  }[];

describe('the audit log over HTTP', () => {
  it('records cross-user reads, staff writes and denials — not own or public-namespace access', async () => {
    await api('POST', `/userdata/${alice.userId}/USER_PUBLIC/profile`, {
      key: alice.key,
      body: { value: { name: 'Ada' } },
    });
    await api('POST', `/userdata/${alice.userId}/USER_PUBLIC/draft`, {
      key: alice.key,
      body: { value: {}, read: 1 },
    });
    await api('GET', `/userdata/${alice.userId}/USER_PUBLIC/profile`, { key: alice.key }); // own: not audited
    await api('POST', '/userdata/_/PUBLIC_RW/board', { key: bob.key, body: { value: { x: 1 } } }); // system namespace: not audited
    await api('GET', '/userdata/_/PUBLIC_RW/board', { key: bob.key });
    const before = (await entriesAbout(alice.key)).length;
    expect(before).toBe(0);

    await api('GET', `/userdata/${alice.userId}/USER_PUBLIC/profile`, { key: bob.key });
    await api('GET', `/userdata/${alice.userId}/USER_PUBLIC/draft`, { key: bob.key });
    await api('POST', `/userdata/${alice.userId}/USER_PUBLIC/profile`, {
      key: bob.key,
      body: { value: { name: 'Bob' } },
    });
    await api('POST', `/userdata/${alice.userId}/USER_PUBLIC/profile`, {
      key: mod.key,
      body: { value: { name: 'Ada (moderated)' } },
    });
    await api('GET', `/userdata/${alice.userId}/USER_PRIVATE`);

    const entries = await entriesAbout(alice.key);
    expect(entries.map((e) => [e.accessor, e.scope, e.key, e.action, e.result, e.channel])).toEqual([
      [bob.userId, 'USER_PUBLIC', 'profile', 'read', 'ok', 'http'],
      [bob.userId, 'USER_PUBLIC', 'draft', 'read', 'denied', 'http'],
      [bob.userId, 'USER_PUBLIC', 'profile', 'write', 'denied', 'http'],
      [mod.userId, 'USER_PUBLIC', 'profile', 'write', 'ok', 'http'],
      ['guest', 'USER_PRIVATE', '', 'list', 'denied', 'http'],
    ]);
    expect(
      entries.every(
        (e) => e.target === alice.userId && e.id.startsWith(`AUDIT::${e.accessor}::${alice.userId}::`),
      ),
    ).toBe(true);
  });

  it('records blob access by sharees and denials of strangers', async () => {
    await api('PUT', '/blob/audited-blob', { key: alice.key, body: 'x' });
    await api('POST', '/share/audited-blob', {
      key: alice.key,
      body: { user_id: bob.userId, access_level: 'read_only' },
    });
    await api('GET', '/blob/audited-blob', { key: bob.key });
    await api('GET', '/blob/audited-blob', { key: mod.key });
    const blobEntries = (await entriesAbout(alice.key)).filter((e) => e.scope === 'blob');
    expect(blobEntries.map((e) => [e.accessor, e.key, e.action, e.result])).toEqual([
      [bob.userId, 'audited-blob', 'read', 'ok'],
      [mod.userId, 'audited-blob', 'read', 'denied'],
    ]);
  });

  it('lets each user see only entries about their own data; admins see everything', async () => {
    const bobs = await entriesAbout(bob.key);
    expect(bobs.every((e) => e.target === bob.userId)).toBe(true);
    expect((await api('GET', `/audit?target=${alice.userId}`, { key: bob.key })).status).toBe(403);
    const all = await entriesAbout(admin.key);
    expect(all.some((e) => e.target === alice.userId)).toBe(true);
    expect((await entriesAbout(admin.key, alice.userId)).length).toBe((await entriesAbout(alice.key)).length);
  });

  it('keeps an intact hash chain', async () => {
    const verification = await t.relay.runtime.verifyAudit();
    expect(verification.ok).toBe(true);
    expect(verification.entries).toBeGreaterThanOrEqual(7);
  });
});
