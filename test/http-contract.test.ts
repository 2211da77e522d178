import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docAddress, Level, parseUserId, SYSTEM_OWNER } from '@scopesync/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { call, enc } from './support/http-client.ts';
import { startTestRelay, type TestUser, useTestRelay } from './support/start-test-relay.ts';

// The HTTP API of DESIGN §4, route by route, against a real relay on SQLite.

const t = useTestRelay();
let alice: TestUser;
let bob: TestUser;

beforeAll(async () => {
  alice = await t.user('alice');
  bob = await t.user('bob');
});

const api = t.api;

describe('keys', () => {
  it('registers a device once per call, even with the same name, and validates its key', async () => {
    const first = await api('POST', '/keys', {
      body: { device_name: 'laptop' },
    });
    const second = await api('POST', '/keys', { body: { device_name: 'laptop' } });
    expect(first.status).toBe(200);
    expect(first.json.key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.json.user_id).toMatch(/^user_[0-9a-f]{16}$/);
    expect(second.json.user_id).not.toBe(first.json.user_id);
    const valid = await api('GET', '/keys/validate', { key: first.json.key });
    expect(valid).toMatchObject({
      status: 200,
      json: { valid: true, user_id: first.json.user_id, level: Level.User },
    });
    const bearer = await api('GET', '/keys/validate', {
      headers: { authorization: `Bearer ${first.json.key}` },
    });
    expect(bearer.json.user_id).toBe(first.json.user_id);
    const query = await api('GET', `/keys/validate?key=${first.json.key}`);
    expect(query.json.user_id).toBe(first.json.user_id);
    expect(await api('GET', `/users/${first.json.user_id}/keys`)).toMatchObject({
      status: 200,
      // Keys come with a proof of possession (test/relay-encryption-keys.test.ts); none yet.
      json: { sign_pk: null, box_pk: null },
    });
  });

  it('refuses bad registrations with 400 and never stores them', async () => {
    for (const body of [
      {},
      { device_name: '' },
      { device_name: 42 },
      { device_name: 'x', sign_pk: '%%%' },
      [],
    ]) {
      const answer = await api('POST', '/keys', { body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.json.error).toBe('BadRequest');
    }
    expect((await api('POST', '/keys', { body: '{"device_name": ' })).json).toMatchObject({
      error: 'BadRequest',
    });
  });

  it('answers 401 for a missing, unknown or revoked key', async () => {
    expect((await api('GET', '/keys/validate')).status).toBe(401);
    expect((await api('GET', '/keys/validate', { key: 'nope' })).json).toMatchObject({
      error: 'Unauthorized',
    });
    const { json } = await api('POST', '/keys', { body: { device_name: 'temp' } });
    expect((await api('DELETE', `/keys/${json.key}`, { key: alice.key })).status).toBe(403);
    expect((await api('DELETE', `/keys/${json.key}`, { key: json.key })).status).toBe(204);
    expect((await api('GET', '/keys/validate', { key: json.key })).status).toBe(401);
    // A revoked key is refused everywhere, even on routes a guest may use.
    expect((await api('GET', '/userdata/_/PUBLIC_RW/x', { key: json.key })).status).toBe(401);
    expect((await api('DELETE', `/keys/${json.key}`)).status).toBe(404);
  });

  it('answers 404 for an unknown user and 400 for a malformed id', async () => {
    expect((await api('GET', '/users/user_0000000000000000/keys')).status).toBe(404);
    expect((await api('GET', '/users/bob/keys')).status).toBe(400);
  });
});

describe('userdata', () => {
  const profile = () => `/userdata/${alice.userId}/USER_PUBLIC/profile`;

  it('writes, reads, versions and deletes a value', async () => {
    const written = await api('POST', profile(), {
      key: alice.key,
      body: { value: { name: 'Ada', langs: ['en'] } },
    });
    expect(written.status).toBe(200);
    expect(written.json).toMatchObject({
      value: { name: 'Ada', langs: ['en'] },
      owner: alice.userId,
      read: 2,
      write: 1,
    });
    const read = await api('GET', profile());
    expect(read.json).toEqual({
      value: { name: 'Ada', langs: ['en'] },
      version: written.json.version,
      owner: alice.userId,
      read: 2,
      write: 1,
    });
    const v2 = await api('POST', profile(), {
      key: alice.key,
      body: { value: { name: 'Ada L.' } },
      headers: { 'if-match': String(written.json.version) },
    });
    expect(v2.status).toBe(200);
    expect(v2.json.version).toBeGreaterThan(written.json.version);
    const stale = await api('POST', profile(), {
      key: alice.key,
      body: { value: { name: 'stale' } },
      headers: { 'if-match': String(written.json.version) },
    });
    expect(stale).toMatchObject({ status: 412, json: { error: 'PreconditionFailed' } });
    expect((await api('GET', profile())).json.value).toEqual({ name: 'Ada L.' });
    expect(
      (
        await api('POST', `/userdata/${alice.userId}/USER_PUBLIC/fresh`, {
          key: alice.key,
          body: { value: {} },
          headers: { 'if-match': '0' },
        })
      ).status,
    ).toBe(200);
    expect((await api('DELETE', profile(), { key: alice.key })).status).toBe(204);
    expect((await api('GET', profile())).status).toBe(404);
    expect((await api('DELETE', profile(), { key: alice.key })).status).toBe(404);
  });

  it('accepts keys with slashes as one encoded segment', async () => {
    const path = `/userdata/${alice.userId}/USER_PUBLIC/${enc('settings/theme')}`;
    expect((await api('POST', path, { key: alice.key, body: { value: { dark: true } } })).status).toBe(200);
    expect((await api('GET', path)).json.value).toEqual({ dark: true });
  });

  it('narrows flags for the owner only and hides an owner-read object as 404', async () => {
    const draft = `/userdata/${alice.userId}/USER_PUBLIC/draft`;
    const written = await api('POST', draft, { key: alice.key, body: { value: { text: 'wip' }, read: 1 } });
    expect(written.json).toMatchObject({ read: 1, write: 1 });
    expect((await api('GET', draft, { key: alice.key })).status).toBe(200);
    expect(await api('GET', draft, { key: bob.key })).toMatchObject({
      status: 404,
      json: { error: 'NotFound', message: 'not found' },
    });
    expect((await api('GET', draft)).status).toBe(404);
    expect((await api('POST', draft, { key: alice.key, body: { value: {}, read: 5 } })).status).toBe(400);
  });

  it('answers 400 for USER_PRIVATE values, but deletes and lists them', async () => {
    const secret = `/userdata/${alice.userId}/USER_PRIVATE/notes`;
    const refused = await api('POST', secret, { key: alice.key, body: { value: { x: 1 } } });
    expect(refused).toMatchObject({ status: 400, json: { message: 'end-to-end encrypted: use the client' } });
    // An encrypted object the client created (over sync) exists for listing and deleting.
    await t.relay.access.prepareWrite(
      { kind: 'user', userId: parseUserId(alice.userId), level: Level.User },
      docAddress('USER_PRIVATE', alice.userId, 'notes'),
    );
    expect((await api('GET', secret, { key: alice.key })).status).toBe(400);
    expect((await api('GET', secret, { key: bob.key })).status).toBe(404);
    expect(
      (await api('GET', `/userdata/${alice.userId}/USER_PRIVATE`, { key: alice.key })).json.keys,
    ).toEqual(['notes']);
    expect((await api('GET', `/userdata/${alice.userId}/USER_PRIVATE`, { key: bob.key })).status).toBe(404);
    expect((await api('DELETE', secret, { key: bob.key })).status).toBe(403);
    expect((await api('DELETE', secret, { key: alice.key })).status).toBe(204);
  });

  it('lists only what the caller may read, with prefix, limit and cursor', async () => {
    const ns = `/userdata/${bob.userId}/USER_PUBLIC`;
    for (const k of ['a1', 'a2', 'a3', 'b1']) {
      await api('POST', `${ns}/${k}`, { key: bob.key, body: { value: { k } } });
    }
    await api('POST', `${ns}/a0`, { key: bob.key, body: { value: {}, read: 1 } });
    expect((await api('GET', ns)).json).toEqual({ keys: ['a1', 'a2', 'a3', 'b1'], cursor: null });
    expect((await api('GET', ns, { key: bob.key })).json.keys).toEqual(['a0', 'a1', 'a2', 'a3', 'b1']);
    const page1 = await api('GET', `${ns}?prefix=a&limit=2`);
    expect(page1.json.keys).toEqual(['a1', 'a2']);
    const page2 = await api('GET', `${ns}?prefix=a&limit=2&cursor=${page1.json.cursor}`);
    expect(page2.json).toEqual({ keys: ['a3'], cursor: null });
    for (const bad of ['?limit=0', '?limit=x', '?prefix=..%00', '?cursor=***']) {
      expect((await api('GET', `${ns}${bad}`)).status, bad).toBe(400);
    }
  });

  it('answers 400 for a bad address, 401/403 for writes the caller may not make', async () => {
    for (const path of [
      '/userdata/alice/USER_PUBLIC/k',
      `/userdata/${alice.userId}/NOPE/k`,
      `/userdata/_/USER_PUBLIC/k`,
      `/userdata/x/PUBLIC_RW/k`,
      `/userdata/_/PUBLIC_RW/${enc('a/../b')}`,
      `/userdata/_/PUBLIC_RW/${enc('x'.repeat(300))}`,
      '/userdata/_/PUBLIC_RW/%E0%A4%A',
    ]) {
      expect((await api('GET', path)).status, path).toBe(400);
    }
    expect(
      (await api('POST', `/userdata/${alice.userId}/USER_PUBLIC/k`, { body: { value: {} } })).status,
    ).toBe(401);
    expect(
      (await api('POST', `/userdata/${alice.userId}/USER_PUBLIC/k`, { key: bob.key, body: { value: {} } }))
        .status,
    ).toBe(403);
    expect(
      (await api('POST', '/userdata/_/PUBLIC_READ/k', { key: bob.key, body: { value: {} } })).status,
    ).toBe(403);
    expect((await api('POST', '/userdata/_/PUBLIC_RW/k', { body: { nope: 1 } })).status).toBe(400);
    expect((await api('POST', '/userdata/_/PUBLIC_RW/k', { body: { value: [1] } })).status).toBe(400);
    expect((await api('GET', '/userdata/Chat/MOD_DATA/k', { key: alice.key })).status).toBe(403);
  });

  it('shows the runtime’s system-owned objects only once they are public-read', async () => {
    await t.relay.runtime.set('SERVER_SCOPE/_/config', { mode: 'calm' });
    expect((await api('GET', '/userdata/_/SERVER_SCOPE/config', { key: alice.key })).status).toBe(404);
    expect((await api('GET', '/userdata/_/SERVER_SCOPE', { key: alice.key })).json.keys).toEqual([]);
    await t.relay.runtime.set('SERVER_SCOPE/_/config', { mode: 'open' }, { read: 2 });
    const read = await api('GET', '/userdata/_/SERVER_SCOPE/config');
    expect(read.json).toMatchObject({ value: { mode: 'open' }, owner: SYSTEM_OWNER, read: 2, write: 0 });
  });
});

describe('blobs', () => {
  const bytes = new Uint8Array([0, 1, 2, 255]);

  it('stores raw bytes with versions, ETags and metadata', async () => {
    const put = await api('PUT', '/blob/report.bin', {
      key: alice.key,
      body: bytes,
      headers: { 'if-match': '0' },
    });
    expect(put.status).toBe(200);
    expect(put.json).toMatchObject({ blob_id: 'report.bin', owner: alice.userId, version: 1, size: 4 });
    const again = await api('PUT', '/blob/report.bin', {
      key: alice.key,
      body: bytes,
      headers: { 'if-match': '0' },
    });
    expect(again.status).toBe(412);
    const got = await api('GET', '/blob/report.bin', { key: alice.key });
    expect(got.status).toBe(200);
    expect(got.bytes).toEqual(bytes);
    expect(got.headers.get('etag')).toBe('"1"');
    expect(
      (await api('GET', '/blob/report.bin', { key: alice.key, headers: { 'if-none-match': '"1"' } })).status,
    ).toBe(304);
    const v2 = await api('PUT', '/blob/report.bin', {
      key: alice.key,
      body: new Uint8Array(0),
      headers: { 'if-match': '"1"' },
    });
    expect(v2.json).toMatchObject({ version: 2, size: 0 });
    const meta = await api('GET', '/blob/report.bin/meta', { key: alice.key });
    expect(meta.json).toMatchObject({ blob_id: 'report.bin', owner: alice.userId, version: 2, size: 0 });
    expect(typeof meta.json.created_at).toBe('number');
    expect((await api('DELETE', '/blob/report.bin', { key: alice.key })).status).toBe(204);
    expect((await api('GET', '/blob/report.bin', { key: alice.key })).status).toBe(404);
    expect((await api('GET', '/blob/report.bin/meta', { key: alice.key })).status).toBe(404);
  });

  it('never gives a deleted and recreated blob a version an old If-Match or ETag holds', async () => {
    const put = (headers: Record<string, string>) =>
      api('PUT', '/blob/reborn.bin', { key: alice.key, body: bytes, headers });
    expect((await put({ 'if-match': '0' })).json.version).toBe(1);
    expect((await api('DELETE', '/blob/reborn.bin', { key: alice.key })).status).toBe(204);
    // Created again ("must not exist" holds): its version goes on past the deleted blob's.
    const reborn = await put({ 'if-match': '0' });
    expect(reborn.status).toBe(200);
    expect(reborn.json.version).toBe(2);
    expect(reborn.headers.get('etag')).toBe('"2"');
    // A writer still holding the first blob's version is refused, not let through.
    expect((await put({ 'if-match': '"1"' })).status).toBe(412);
    // A reader's cached copy of the first blob is not passed off as current.
    const got = await api('GET', '/blob/reborn.bin', { key: alice.key, headers: { 'if-none-match': '"1"' } });
    expect(got.status).toBe(200);
    expect(got.headers.get('etag')).toBe('"2"');
    expect((await api('GET', '/blob/reborn.bin/meta', { key: alice.key })).json.version).toBe(2);
  });

  it('hides other users’ blobs as 404 and wants a key', async () => {
    await api('PUT', '/blob/private.txt', { key: alice.key, body: 'mine' });
    expect((await api('GET', '/blob/private.txt', { key: bob.key })).status).toBe(404);
    expect((await api('GET', '/blob/private.txt/meta', { key: bob.key })).status).toBe(404);
    expect((await api('GET', '/blob/never-existed', { key: bob.key })).status).toBe(404);
    expect((await api('PUT', '/blob/private.txt', { key: bob.key, body: 'yours?' })).status).toBe(404);
    expect((await api('DELETE', '/blob/private.txt', { key: bob.key })).status).toBe(404);
    expect((await api('GET', '/blob/private.txt')).status).toBe(401);
    expect((await api('GET', '/blob/private.txt', { key: alice.key })).bytes).toEqual(
      new TextEncoder().encode('mine'),
    );
    expect((await api('PUT', `/blob/${enc('../etc/passwd')}`, { key: alice.key, body: 'x' })).status).toBe(
      400,
    );
    expect(
      (await api('PUT', '/blob/x', { key: alice.key, body: 'x', headers: { 'if-match': 'abc' } })).status,
    ).toBe(400);
  });
});

describe('shares', () => {
  it('shares, lists and revokes with the seed’s answers', async () => {
    await api('PUT', '/blob/shared.json', { key: alice.key, body: '{"theme":"dark"}' });
    const share = await api('POST', '/share/shared.json', {
      key: alice.key,
      body: { user_id: bob.userId, access_level: 'read_only' },
    });
    expect(share.json).toMatchObject({
      blob_id: 'shared.json',
      user_id: bob.userId,
      access_level: 'read_only',
    });
    expect(typeof share.json.granted_at).toBe('number');
    expect((await api('GET', '/blob/shared.json', { key: bob.key })).status).toBe(200);
    expect((await api('PUT', '/blob/shared.json', { key: bob.key, body: 'x' })).status).toBe(403);
    const list = await api('GET', '/share/shared.json', { key: bob.key });
    expect(list.json).toEqual({
      blob_id: 'shared.json',
      shares: [
        {
          user_id: bob.userId,
          access_level: 'read_only',
          granted_by: alice.userId,
          granted_at: share.json.granted_at,
        },
      ],
    });
    await api('POST', '/share/shared.json', {
      key: alice.key,
      body: { user_id: bob.userId, access_level: 'read_write' },
    });
    expect((await api('PUT', '/blob/shared.json', { key: bob.key, body: 'edited' })).status).toBe(200);
    // Sharees do not re-share or revoke; only the owner manages the audience.
    const carol = await t.user('carol');
    expect(
      (
        await api('POST', '/share/shared.json', {
          key: bob.key,
          body: { user_id: carol.userId, access_level: 'read_only' },
        })
      ).status,
    ).toBe(403);
    expect((await api('DELETE', `/share/shared.json/${bob.userId}`, { key: alice.key })).status).toBe(204);
    expect((await api('DELETE', `/share/shared.json/${bob.userId}`, { key: alice.key })).status).toBe(404);
    expect((await api('GET', '/blob/shared.json', { key: bob.key })).status).toBe(404);
  });

  it('answers 400 for self-shares and bad levels, 404 for unknown users and invisible blobs', async () => {
    await api('PUT', '/blob/s2', { key: alice.key, body: 'x' });
    const post = (key: string, body: unknown) => api('POST', '/share/s2', { key, body });
    expect((await post(alice.key, { user_id: alice.userId, access_level: 'read_only' })).status).toBe(400);
    expect((await post(alice.key, { user_id: bob.userId, access_level: 'admin' })).status).toBe(400);
    expect((await post(alice.key, { user_id: 'bob', access_level: 'read_only' })).status).toBe(400);
    expect(
      (await post(alice.key, { user_id: 'user_0000000000000000', access_level: 'read_only' })).status,
    ).toBe(404);
    expect((await post(bob.key, { user_id: alice.userId, access_level: 'read_only' })).status).toBe(404);
    expect((await api('GET', '/share/s2', { key: bob.key })).status).toBe(404);
    expect(
      (await api('POST', '/share/s2', { body: { user_id: bob.userId, access_level: 'read_only' } })).status,
    ).toBe(401);
  });
});

describe('shares/incoming ("shared with me")', () => {
  it('lists the blobs shared with the caller, with owner and level, and forgets revoked ones', async () => {
    const dave = await t.user('dave');
    const erin = await t.user('erin');
    await api('PUT', '/blob/in-b', { key: alice.key, body: 'b' });
    await api('PUT', '/blob/in-a', { key: bob.key, body: 'a' });
    await api('POST', '/share/in-b', {
      key: alice.key,
      body: { user_id: dave.userId, access_level: 'read_write' },
    });
    const granted = await api('POST', '/share/in-a', {
      key: bob.key,
      body: { user_id: dave.userId, access_level: 'read_only' },
    });
    // Shares to other people are theirs, not dave's.
    await api('POST', '/share/in-b', {
      key: alice.key,
      body: { user_id: erin.userId, access_level: 'read_only' },
    });
    const incoming = await api('GET', '/shares/incoming', { key: dave.key });
    expect(incoming.status).toBe(200);
    expect(incoming.json).toEqual({
      shares: [
        {
          blob_id: 'in-a',
          owner: bob.userId,
          access_level: 'read_only',
          granted_by: bob.userId,
          granted_at: granted.json.granted_at,
        },
        expect.objectContaining({ blob_id: 'in-b', owner: alice.userId, access_level: 'read_write' }),
      ],
    });
    expect((await api('DELETE', `/share/in-b/${dave.userId}`, { key: alice.key })).status).toBe(204);
    await api('DELETE', '/blob/in-a', { key: bob.key });
    expect((await api('GET', '/shares/incoming', { key: dave.key })).json).toEqual({ shares: [] });
  });

  it('wants a key (401), and shows the owner nothing of what they shared out', async () => {
    expect((await api('GET', '/shares/incoming')).status).toBe(401);
    await api('PUT', '/blob/out-1', { key: alice.key, body: 'x' });
    const frank = await t.user('frank');
    await api('POST', '/share/out-1', {
      key: alice.key,
      body: { user_id: frank.userId, access_level: 'read_only' },
    });
    const mine = (await api('GET', '/shares/incoming', { key: alice.key })).json as {
      shares: { blob_id: string }[];
    };
    expect(mine.shares.map((x) => x.blob_id)).not.toContain('out-1');
    expect((await api('POST', '/shares/incoming', { key: alice.key })).status).toBe(405);
  });
});

describe('blobs/mine ("my blobs")', () => {
  it('lists only the blobs the caller owns, by id, page by page; 401 without a key', async () => {
    const gina = await t.user('gina');
    const hal = await t.user('hal');
    for (const id of ['mine-c', 'mine-a', 'mine-b'])
      await api('PUT', `/blob/${id}`, { key: gina.key, body: id });
    await api('PUT', '/blob/mine-hal', { key: hal.key, body: 'h' });
    await api('POST', '/share/mine-hal', {
      key: hal.key,
      body: { user_id: gina.userId, access_level: 'read_write' },
    });
    const all = await api('GET', '/blobs/mine', { key: gina.key });
    expect(all.status).toBe(200);
    expect(all.json).toEqual({
      blobs: [
        expect.objectContaining({ blob_id: 'mine-a', owner: gina.userId, encrypted: false }),
        expect.objectContaining({ blob_id: 'mine-b' }),
        expect.objectContaining({ blob_id: 'mine-c' }),
      ],
      next: null,
    });
    const first = (await api('GET', '/blobs/mine?limit=2', { key: gina.key })).json as {
      blobs: { blob_id: string }[];
      next: string | null;
    };
    expect([first.blobs.map((b) => b.blob_id), first.next]).toEqual([['mine-a', 'mine-b'], 'mine-b']);
    const second = (await api('GET', `/blobs/mine?limit=2&after=${first.next}`, { key: gina.key })).json;
    expect(second).toEqual({ blobs: [expect.objectContaining({ blob_id: 'mine-c' })], next: null });
    expect((await api('GET', '/blobs/mine', { key: hal.key })).json).toEqual({
      blobs: [expect.objectContaining({ blob_id: 'mine-hal' })],
      next: null,
    });
    expect((await api('GET', '/blobs/mine')).status).toBe(401);
    expect((await api('GET', '/blobs/mine?limit=0', { key: gina.key })).status).toBe(400);
    expect((await api('GET', '/blobs/mine?after=..', { key: gina.key })).status).toBe(400);
    expect((await api('POST', '/blobs/mine', { key: gina.key })).status).toBe(405);
  });
});

describe('audit, health, metrics', () => {
  it('shows users the entries about their data, and admins everything', async () => {
    const admin = await t.user('admin', Level.Admin);
    await api('POST', `/userdata/${bob.userId}/USER_PUBLIC/audited`, {
      key: bob.key,
      body: { value: { a: 1 } },
    });
    await api('GET', `/userdata/${bob.userId}/USER_PUBLIC/audited`, { key: alice.key });
    const mine = await api('GET', '/audit', { key: bob.key });
    expect(mine.status).toBe(200);
    expect(mine.json.entries.length).toBeGreaterThan(0);
    expect(mine.json.entries.every((e: { target: string }) => e.target === bob.userId)).toBe(true);
    const read = mine.json.entries.find(
      (e: { accessor: string; key: string }) => e.accessor === alice.userId && e.key === 'audited',
    );
    expect(read).toMatchObject({ scope: 'USER_PUBLIC', action: 'read', result: 'ok', channel: 'http' });
    expect(read.id).toMatch(new RegExp(`^AUDIT::${alice.userId}::${bob.userId}::\\d+$`));
    expect((await api('GET', `/audit?target=${alice.userId}`, { key: bob.key })).status).toBe(403);
    expect((await api('GET', '/audit')).status).toBe(401);
    const all = await api('GET', '/audit?limit=2', { key: admin.key });
    expect(all.json.entries).toHaveLength(2);
    const next = await api('GET', `/audit?limit=2&after=${all.json.next}`, { key: admin.key });
    expect(next.json.entries[0].seq).toBe(all.json.entries[1].seq + 1);
    expect(
      (await api('GET', `/audit?target=${bob.userId}&since=0`, { key: admin.key })).json.entries.length,
    ).toBe(mine.json.entries.length);
    expect((await api('GET', '/audit?limit=99999', { key: admin.key })).status).toBe(400);
  });

  it('answers health and Prometheus metrics', async () => {
    expect(await api('GET', '/health')).toMatchObject({ status: 200, json: { status: 'ok' } });
    const metrics = await api('GET', '/metrics');
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = new TextDecoder().decode(metrics.bytes);
    for (const name of [
      'scopesync_http_requests_total',
      'scopesync_access_denials_total',
      'scopesync_relay_store_seconds_bucket',
    ]) {
      expect(text).toContain(name);
    }
  });
});

describe('errors, limits and CORS', () => {
  it('answers 404 for unknown routes and 405 with Allow for wrong methods', async () => {
    expect(await api('GET', '/nope')).toMatchObject({ status: 404, json: { error: 'NotFound' } });
    expect((await api('GET', '/')).status).toBe(404);
    const wrong = await api('PATCH', '/keys');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    expect((await api('PUT', '/health')).status).toBe(405);
    expect((await api('GET', '/sync')).status).toBe(400);
  });

  it('answers preflights and sends CORS headers on every answer', async () => {
    const preflight = await api('OPTIONS', '/userdata/_/PUBLIC_RW/x', {
      headers: { origin: 'http://example.test', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-headers')).toContain('x-api-key');
    expect((await api('GET', '/nope')).headers.get('access-control-allow-origin')).toBe('*');
  });

  it('refuses a body over the limit with 413 without reading it', async () => {
    const small = await startTestRelay({ limits: { maxBodyBytes: 1024 } });
    try {
      const user = await small.user();
      const big = await call(small.url, 'PUT', '/blob/big', { key: user.key, body: new Uint8Array(4096) });
      expect(big).toMatchObject({ status: 413, json: { error: 'TooLarge' } });
      // A declared length far past the limit is refused before a byte is sent.
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${small.url}/blob/huge`, {
          method: 'PUT',
          headers: { 'x-api-key': user.key, 'content-length': String(10 * 1024 ** 3) },
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.flushHeaders();
      });
      expect(status).toBe(413);
      expect((await call(small.url, 'GET', '/blob/big', { key: user.key })).status).toBe(404);
    } finally {
      await small.close();
    }
  });

  it('rate limits per key with 429 and Retry-After', async () => {
    const limited = await startTestRelay({ rateLimit: { capacity: 3, refillPerSecond: 0.01 } });
    try {
      const user = await limited.user();
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++)
        statuses.push((await call(limited.url, 'GET', '/keys/validate', { key: user.key })).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      const refused = await call(limited.url, 'GET', '/health', { key: user.key });
      expect(refused.json.error).toBe('RateLimited');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      // Another caller has its own bucket.
      expect((await call(limited.url, 'GET', '/health')).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});

describe('the web app', () => {
  it('serves files and the SPA fallback, never anything outside the directory', async () => {
    const root = await mkdtemp(join(tmpdir(), 'scopesync-web-'));
    const outside = await mkdtemp(join(tmpdir(), 'scopesync-secret-'));
    await writeFile(join(outside, 'secret.txt'), 'TOP-SECRET-CONTENT');
    await mkdir(join(root, 'assets'));
    await writeFile(join(root, 'index.html'), '<!doctype html><title>tour</title>');
    await writeFile(join(root, 'assets', 'app.js'), 'console.log(1)');
    await symlink(join(outside, 'secret.txt'), join(root, 'assets', 'link.txt'));
    const web = await startTestRelay({ staticDir: root });
    try {
      const page = await call(web.url, 'GET', '/');
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect((await call(web.url, 'GET', '/assets/app.js')).headers.get('content-type')).toContain(
        'javascript',
      );
      expect(new TextDecoder().decode((await call(web.url, 'GET', '/tour/sharing')).bytes)).toContain(
        '<title>tour</title>',
      );
      expect((await call(web.url, 'GET', '/assets/missing.js')).status).toBe(404);
      expect((await call(web.url, 'GET', '/assets/link.txt')).status).toBe(404);
      const outsideEscape = `/..%2F${enc(outside.split('/').pop() ?? '')}%2Fsecret.txt`;
      for (const path of [
        outsideEscape,
        '/..%2F..%2Fetc%2Fpasswd',
        '/%2e%2e/%2e%2e/etc/passwd',
        '/assets/..%5C..%5Csecret.txt',
        '/a%00b',
      ]) {
        const answer = await call(web.url, 'GET', path);
        expect(new TextDecoder().decode(answer.bytes), path).not.toContain('TOP-SECRET-CONTENT');
        expect(new TextDecoder().decode(answer.bytes), path).not.toContain('root:');
      }
      // API paths stay API paths.
      expect((await call(web.url, 'GET', '/userdata')).json.error).toBe('NotFound');
    } finally {
      await web.close();
      await rm(root, { recursive: true, force: true });
      await rm(outside, { recursive: true, force: true });
    }
  });
});
