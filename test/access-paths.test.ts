import { randomUUID } from 'node:crypto';
import { Level } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import { enc } from './support/http-client.ts';
import { type TestUser, useTestRelay } from './support/start-test-relay.ts';
import {
  type DocClient,
  grantsRead,
  type MuxSocket,
  update,
  useSyncSockets,
} from './support/sync-sockets.ts';

/*
 * Every path that changes who may read or write an object reaches live sockets through the
 * path that made the change: the affected subscriber learns of it (multiplexed: a permission
 * message; single-doc: its socket closed, or its writes refused) and receives nothing written
 * after it that it may no longer read. Creation and flag narrowing have their own files
 * (access-creation.test.ts, access-narrowing.test.ts); here: shares, API keys, levels, deletes.
 */

const t = useTestRelay();
const SECRET = 'SECRET-AFTER';

const sockets = useSyncSockets(t);
const single = sockets.single;
const mux = (key: string): Promise<MuxSocket> => sockets.mux(key, { fence: true });

/** Owner-written blob `id` (a collaborative document with one value), shared with `sharee` at `level`. */
async function sharedBlob(
  owner: MuxSocket,
  id: string,
  sharee: TestUser,
  level: 'read_only' | 'read_write',
  ownerKey: string,
): Promise<string> {
  const doc = `blob/${id}`;
  expect((await owner.subscribe(doc)).access).toBe('read-write');
  expect(await owner.write(doc, update('title', 'board'))).toMatchObject({ type: 'ack' });
  const shared = await t.api('POST', `/share/${enc(id)}`, {
    key: ownerKey,
    body: { user_id: sharee.userId, access_level: level },
  });
  expect(shared.status).toBe(200);
  return doc;
}

/** At the fence: the subscriber's last permission for `doc` does not grant reading, and no frame carried `text`. */
async function expectCutOff(socket: MuxSocket, doc: string, text: string): Promise<void> {
  await socket.fence();
  const last = socket.lastPermission(doc);
  expect(grantsRead(last?.access), `last permission for ${doc}: ${last?.access}`).toBe(false);
  expect(socket.framesCarrying(text), `frames carrying ${text}`).toEqual([]);
}

/** Alice's public USER_PUBLIC object `key` (read 2). */
/**
 * A stock client's edit after it lost write access: answered with permission-denied, and
 * `watcher` (fenced) never sees it.
 */
async function expectEditRefused(
  client: DocClient,
  field: string,
  text: string,
  watcher: MuxSocket,
): Promise<void> {
  const from = client.frames.length;
  client.doc.getMap('data').set(field, text);
  await client.until('permission-denied', () =>
    client.frames.slice(from).some((f) => f.message.type === 'permission-denied'),
  );
  await watcher.fence();
  expect(watcher.saw(text)).toBe(false);
}

async function publicObject(alice: TestUser, key: string): Promise<string> {
  const created = await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/${key}`, {
    key: alice.key,
    body: { value: { text: 'public' } },
  });
  expect(created.status).toBe(200);
  return `USER_PUBLIC/${alice.userId}/${key}`;
}

describe('share downgrade read_write → read_only', () => {
  it('tells the multiplexed sharee it may only read, refuses its later write and keeps it from the owner', async () => {
    const owner = await t.user('owner');
    const sharee = await t.user('sharee');
    const id = `b-${randomUUID()}`;
    const ownerSocket = await mux(owner.key);
    const doc = await sharedBlob(ownerSocket, id, sharee, 'read_write', owner.key);
    const shareeSocket = await mux(sharee.key);
    expect((await shareeSocket.subscribe(doc)).access).toBe('read-write');

    const downgraded = await t.api('POST', `/share/${enc(id)}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_only' },
    });
    expect(downgraded.status).toBe(200);
    await shareeSocket.fence();
    expect(shareeSocket.lastPermission(doc)?.access).toBe('read');
    expect(await shareeSocket.write(doc, update('title', 'SHAREE-EDIT'))).toMatchObject({
      type: 'error',
      kind: 'Forbidden',
    });
    await ownerSocket.fence();
    expect(ownerSocket.saw('SHAREE-EDIT')).toBe(false);
    // Still a reader: the owner's later edit reaches it.
    expect(await ownerSocket.write(doc, update('note', 'owner-later'))).toMatchObject({ type: 'ack' });
    await shareeSocket.waitFor('the owner’s later edit', () => shareeSocket.saw('owner-later'));
  });

  it('refuses the single-document sharee’s later edit with permission-denied', async () => {
    const owner = await t.user('owner');
    const sharee = await t.user('sharee');
    const id = `b-${randomUUID()}`;
    const ownerSocket = await mux(owner.key);
    const doc = await sharedBlob(ownerSocket, id, sharee, 'read_write', owner.key);
    const client = single(doc, sharee.key);
    await client.synced();
    await client.settle();

    const downgraded = await t.api('POST', `/share/${enc(id)}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_only' },
    });
    expect(downgraded.status).toBe(200);
    await expectEditRefused(client, 'title', 'SHAREE-EDIT', ownerSocket);
  });
});

describe('share revocation', () => {
  it('ends the multiplexed sharee’s subscription before the owner’s next edit', async () => {
    const owner = await t.user('owner');
    const sharee = await t.user('sharee');
    const id = `b-${randomUUID()}`;
    const ownerSocket = await mux(owner.key);
    const doc = await sharedBlob(ownerSocket, id, sharee, 'read_only', owner.key);
    const shareeSocket = await mux(sharee.key);
    expect((await shareeSocket.subscribe(doc)).access).toBe('read');

    expect((await t.api('DELETE', `/share/${enc(id)}/${sharee.userId}`, { key: owner.key })).status).toBe(
      204,
    );
    expect(await ownerSocket.write(doc, update('title', SECRET))).toMatchObject({ type: 'ack' });
    await expectCutOff(shareeSocket, doc, SECRET);
  });

  it('closes the single-document sharee with 4403 before the owner’s next edit', async () => {
    const owner = await t.user('owner');
    const sharee = await t.user('sharee');
    const id = `b-${randomUUID()}`;
    const ownerSocket = await mux(owner.key);
    const doc = await sharedBlob(ownerSocket, id, sharee, 'read_only', owner.key);
    const client = single(doc, sharee.key);
    await client.synced();

    expect((await t.api('DELETE', `/share/${enc(id)}/${sharee.userId}`, { key: owner.key })).status).toBe(
      204,
    );
    expect(await ownerSocket.write(doc, update('title', SECRET))).toMatchObject({ type: 'ack' });
    expect(await client.closedByRelay()).toBe(4403);
    expect(client.holds(SECRET)).toBe(false);
  });
});

describe('API key revocation (DELETE /keys/<key>)', () => {
  it('closes the key’s multiplexed and single-document sockets with 4401; nothing after reaches them', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const doc = await publicObject(alice, `profile-${randomUUID()}`);
    const bobSocket = await mux(bob.key);
    expect((await bobSocket.subscribe(doc)).access).toBe('read');
    const client = single(doc, bob.key);
    await client.synced();

    expect((await t.api('DELETE', `/keys/${bob.key}`, { key: bob.key })).status).toBe(204);
    const alicePost = await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/${doc.split('/')[2]}`, {
      key: alice.key,
      body: { value: { text: SECRET } },
    });
    expect(alicePost.status).toBe(200);
    expect((await bobSocket.closed).code).toBe(4401);
    expect(await client.closedByRelay()).toBe(4401);
    expect(bobSocket.saw(SECRET)).toBe(false);
    expect(client.holds(SECRET)).toBe(false);
  });
});

describe('level change (runtime.setLevel demoting a moderator)', () => {
  it('narrows the moderator’s subscription of a user’s object to read; its later write is refused', async () => {
    const alice = await t.user('alice');
    const mod = await t.user('mod', Level.Moderator);
    const doc = await publicObject(alice, `profile-${randomUUID()}`);
    const aliceSocket = await mux(alice.key);
    expect((await aliceSocket.subscribe(doc)).access).toBe('read-write');
    const modSocket = await mux(mod.key);
    expect((await modSocket.subscribe(doc)).access).toBe('read-write');

    await t.relay.runtime.setLevel(mod.userId, Level.User);
    await modSocket.fence();
    expect(modSocket.lastPermission(doc)?.access).toBe('read');
    expect(await modSocket.write(doc, update('text', 'DEFACED'))).toMatchObject({
      type: 'error',
      kind: 'Forbidden',
    });
    await aliceSocket.fence();
    expect(aliceSocket.saw('DEFACED')).toBe(false);
  });

  it('ends the moderator’s subscription of an absent key; the owner-read draft created later never reaches it', async () => {
    const alice = await t.user('alice');
    const mod = await t.user('mod', Level.Moderator);
    const key = `draft-${randomUUID()}`;
    const doc = `USER_PUBLIC/${alice.userId}/${key}`;
    const modSocket = await mux(mod.key);
    await modSocket.subscribe(doc);

    await t.relay.runtime.setLevel(mod.userId, Level.User);
    const created = await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/${key}`, {
      key: alice.key,
      body: { value: { text: SECRET }, read: 1 },
    });
    expect(created.status).toBe(200);
    await expectCutOff(modSocket, doc, SECRET);
  });

  it('refuses the demoted moderator’s single-document edit with permission-denied', async () => {
    const alice = await t.user('alice');
    const mod = await t.user('mod', Level.Moderator);
    const doc = await publicObject(alice, `profile-${randomUUID()}`);
    const aliceSocket = await mux(alice.key);
    expect((await aliceSocket.subscribe(doc)).access).toBe('read-write');
    const client = single(doc, mod.key);
    await client.synced();
    await client.settle();

    await t.relay.runtime.setLevel(mod.userId, Level.User);
    await expectEditRefused(client, 'text', 'DEFACED', aliceSocket);
  });
});

describe('delete', () => {
  it('HTTP DELETE of a userdata object ends a multiplexed reader; the draft re-created later never reaches it', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const key = `post-${randomUUID()}`;
    const doc = await publicObject(alice, key);
    const bobSocket = await mux(bob.key);
    expect((await bobSocket.subscribe(doc)).access).toBe('read');

    const path = `/userdata/${alice.userId}/USER_PUBLIC/${key}`;
    expect((await t.api('DELETE', path, { key: alice.key })).status).toBe(204);
    const again = await t.api('POST', path, { key: alice.key, body: { value: { text: SECRET }, read: 1 } });
    expect(again.status).toBe(200);
    await expectCutOff(bobSocket, doc, SECRET);
  });

  it('HTTP DELETE of a userdata object closes a single-document reader (44xx)', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const key = `post-${randomUUID()}`;
    const doc = await publicObject(alice, key);
    const client = single(doc, bob.key);
    await client.synced();

    const path = `/userdata/${alice.userId}/USER_PUBLIC/${key}`;
    expect((await t.api('DELETE', path, { key: alice.key })).status).toBe(204);
    expect(await client.closedByRelay()).toBeOneOf([4403, 4404]);
    const again = await t.api('POST', path, { key: alice.key, body: { value: { text: SECRET }, read: 1 } });
    expect(again.status).toBe(200);
    expect(client.holds(SECRET)).toBe(false);
  });

  it('HTTP DELETE of a blob ends the sharee’s subscription; the blob re-created later never reaches it', async () => {
    const owner = await t.user('owner');
    const sharee = await t.user('sharee');
    const id = `b-${randomUUID()}`;
    const ownerSocket = await mux(owner.key);
    const doc = await sharedBlob(ownerSocket, id, sharee, 'read_write', owner.key);
    const shareeSocket = await mux(sharee.key);
    expect((await shareeSocket.subscribe(doc)).access).toBe('read-write');

    expect((await t.api('DELETE', `/blob/${enc(id)}`, { key: owner.key })).status).toBe(204);
    const again = await mux(owner.key);
    again.send(doc, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    expect(await again.write(doc, update('title', SECRET))).toMatchObject({ type: 'ack' });
    await expectCutOff(shareeSocket, doc, SECRET);
  });

  it('runtime.delete ends a reader’s subscription; the object re-created at read 0 never reaches it', async () => {
    const bob = await t.user('bob');
    const doc = `SERVER_SCOPE/_/banner-${randomUUID()}`;
    await t.relay.runtime.set(doc, { text: 'public' }, { read: 2 });
    const bobSocket = await mux(bob.key);
    expect((await bobSocket.subscribe(doc)).access).toBe('read');

    expect(await t.relay.runtime.delete(doc)).toBe(true);
    await t.relay.runtime.set(doc, { text: SECRET });
    await expectCutOff(bobSocket, doc, SECRET);
  });
});
