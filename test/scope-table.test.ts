import { type DocName, docAddress, Level, parseUserId } from '@scopesync/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestRelay } from './support/start-test-relay.ts';

// The scope table of DESIGN §1, over HTTP, for each kind of caller. Statuses are what a
// client sees: 200/204 allowed, 401 "bring a key", 403 refused, 404 hidden or absent,
// 400 for USER_PRIVATE values (end-to-end encrypted: the relay cannot read or write them).

type Actor = 'guest' | 'owner' | 'other' | 'moderator' | 'admin';
const ACTORS: readonly Actor[] = ['guest', 'owner', 'other', 'moderator', 'admin'];

const t = useTestRelay();
const keys = new Map<Actor, string | undefined>();
let owner = '';
let counter = 0;

beforeAll(async () => {
  const alice = await t.user('owner');
  owner = alice.userId;
  keys.set('guest', undefined);
  keys.set('owner', alice.key);
  keys.set('other', (await t.user('other')).key);
  keys.set('moderator', (await t.user('moderator', Level.Moderator)).key);
  keys.set('admin', (await t.user('admin', Level.Admin)).key);
});

/** Creates a fresh object in the state a scope's normal writer leaves it, and returns its URL path. */
async function fresh(scope: string, flags: { read?: 0 | 1 | 2; write?: 0 | 1 } = {}): Promise<string> {
  const key = `k${++counter}`;
  const ns = scope.startsWith('USER_') ? owner : scope === 'MOD_DATA' ? 'Chat' : '_';
  const name = `${scope}/${ns}/${key}` as DocName;
  if (scope === 'USER_PRIVATE') {
    // Only the owner's client creates these (as ciphertext, over sync): record the metadata as it would.
    await t.relay.access.prepareWrite(
      { kind: 'user', userId: parseUserId(owner), level: Level.User },
      docAddress(scope, ns, key),
      flags,
    );
  } else {
    // Who writes it first decides its owner: the user for USER_*, else the system.
    const userScope = scope === 'USER_PUBLIC';
    await t.relay.runtime.set(
      name,
      { v: 1 },
      { read: flags.read ?? 2, write: flags.write ?? 1, ...(userScope ? { owner } : {}) },
    );
  }
  return `/userdata/${ns}/${scope}/${key}`;
}

async function status(actor: Actor, method: string, path: string): Promise<number> {
  const body = method === 'POST' ? { value: { by: actor } } : undefined;
  return (await t.api(method, path, { key: keys.get(actor), body })).status;
}

/** Expected statuses per actor, in ACTORS order: guest, owner, other, moderator, admin. */
type Row = readonly [number, number, number, number, number];

const TABLE: readonly {
  scope: string;
  flags?: { read?: 0 | 1 | 2; write?: 0 | 1 };
  read: Row;
  write: Row;
  delete: Row;
  list: Row;
}[] = [
  {
    scope: 'PUBLIC_READ',
    read: [200, 200, 200, 200, 200],
    write: [401, 403, 403, 403, 200],
    delete: [401, 403, 403, 403, 204],
    list: [200, 200, 200, 200, 200],
  },
  {
    scope: 'PUBLIC_RW',
    read: [200, 200, 200, 200, 200],
    write: [200, 200, 200, 200, 200],
    delete: [204, 204, 204, 204, 204],
    list: [200, 200, 200, 200, 200],
  },
  {
    scope: 'USER_PUBLIC',
    read: [200, 200, 200, 200, 200],
    write: [401, 200, 403, 200, 200],
    delete: [401, 204, 403, 204, 204],
    list: [200, 200, 200, 200, 200],
  },
  // An owner-read draft: the owner only, for reading; staff may still moderate (write, delete) it.
  {
    scope: 'USER_PUBLIC',
    flags: { read: 1 },
    read: [404, 200, 404, 404, 404],
    write: [401, 200, 403, 200, 200],
    delete: [401, 204, 403, 204, 204],
    list: [200, 200, 200, 200, 200],
  },
  {
    scope: 'USER_PRIVATE',
    read: [404, 400, 404, 404, 404],
    write: [401, 400, 403, 403, 403],
    delete: [401, 204, 403, 403, 204],
    list: [404, 200, 404, 404, 404],
  },
  // Runtime data stays invisible until it is public-read, and clients cannot write a write-0 object.
  {
    scope: 'SERVER_SCOPE',
    flags: { read: 0, write: 0 },
    read: [404, 404, 404, 404, 404],
    write: [401, 403, 403, 403, 403],
    delete: [401, 403, 403, 403, 404],
    list: [200, 200, 200, 200, 200],
  },
  {
    scope: 'SERVER_SCOPE',
    flags: { read: 2, write: 1 },
    read: [200, 200, 200, 200, 200],
    write: [401, 403, 403, 403, 200],
    delete: [401, 403, 403, 403, 204],
    list: [200, 200, 200, 200, 200],
  },
  {
    scope: 'MOD_DATA',
    read: [401, 403, 403, 403, 403],
    write: [401, 403, 403, 403, 403],
    delete: [401, 403, 403, 403, 403],
    list: [401, 403, 403, 403, 403],
  },
];

describe('the scope table over HTTP', () => {
  for (const row of TABLE) {
    const label = `${row.scope}${row.flags ? ` at read ${row.flags.read ?? 2} / write ${row.flags.write ?? 1}` : ''}`;
    it(label, async () => {
      const seen: Record<string, Row> = {};
      const shared = await fresh(row.scope, row.flags);
      seen.read = (await Promise.all(ACTORS.map((a) => status(a, 'GET', shared)))) as unknown as Row;
      seen.list = (await Promise.all(
        ACTORS.map((a) => status(a, 'GET', shared.slice(0, shared.lastIndexOf('/')))),
      )) as unknown as Row;
      const writes: number[] = [];
      const deletes: number[] = [];
      for (const actor of ACTORS) {
        writes.push(await status(actor, 'POST', await fresh(row.scope, row.flags)));
        deletes.push(await status(actor, 'DELETE', await fresh(row.scope, row.flags)));
      }
      seen.write = writes as unknown as Row;
      seen.delete = deletes as unknown as Row;
      expect(seen).toEqual({ read: row.read, list: row.list, write: row.write, delete: row.delete });
    });
  }

  it('lists only the objects each caller may read', async () => {
    const ns = `/userdata/${owner}/USER_PUBLIC`;
    const before = (await t.api('GET', ns)).json.keys.length;
    await fresh('USER_PUBLIC', { read: 1 });
    await fresh('USER_PUBLIC');
    expect((await t.api('GET', ns)).json.keys.length).toBe(before + 1);
    expect((await t.api('GET', ns, { key: keys.get('admin') })).json.keys.length).toBe(before + 1);
    const mine = (await t.api('GET', ns, { key: keys.get('owner') })).json.keys.length;
    expect(mine).toBeGreaterThan(before + 1);
  });

  it('stores nothing for a refused write', async () => {
    const path = await fresh('USER_PUBLIC');
    const before = (await t.api('GET', path)).json;
    for (const actor of ['guest', 'other'] as const) {
      expect(await status(actor, 'POST', path)).toBeGreaterThanOrEqual(400);
    }
    expect((await t.api('GET', path)).json).toEqual(before);
  });
});
