import { createClient, type DocHandle, memoryClientStore, type SyncClient } from '@scopesync/client';
import { Level, SyncError } from '@scopesync/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import type * as Y from 'yjs';
import { type TestUser, useTestRelay } from './support/start-test-relay.ts';

/*
 * Subscribing to a document that does not exist yet (and that the caller may not create)
 * waits instead of failing: the relay answers permission `waiting` and keeps the
 * subscription; once the document is created (or opened to the caller) it sends permission
 * and syncs it. Hidden and absent documents wait alike. The real relay and the real client.
 */

const t = useTestRelay();
let clients: SyncClient[] = [];

afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
});

async function client(user: TestUser): Promise<SyncClient> {
  const c = await createClient({
    url: t.url,
    apiKey: user.key,
    WebSocket,
    store: memoryClientStore(),
    backoff: { initialMs: 20, maxMs: 200 },
  });
  clients.push(c);
  return c;
}

const data = (doc: Y.Doc): unknown => doc.getMap('data').toJSON();

/** Records a handle's permission events and whether it closed. */
function watch(handle: DocHandle): { permissions: { access: string; reason: string }[]; closed: boolean } {
  const seen = { permissions: [] as { access: string; reason: string }[], closed: false };
  handle.on('permission', (p) => seen.permissions.push({ access: p.access, reason: p.reason }));
  handle.on('closed', () => {
    seen.closed = true;
  });
  return seen;
}

describe('subscriptions to documents that do not exist yet', () => {
  it('waits for another user’s USER_PUBLIC profile and syncs it once written over HTTP', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const b = await client(bob);
    const name = `USER_PUBLIC/${alice.userId}/profile`;
    const handle = b.doc(name);
    const seen = watch(handle);
    let synced = false;
    void handle.whenSynced.then(() => {
      synced = true;
    });
    await vi.waitFor(() => expect(seen.permissions).toEqual([{ access: 'waiting', reason: '' }]));
    expect(handle.waiting).toBe(true);
    expect(handle.closed).toBe(false);
    // Bob may not write it: decide() refuses locally, as before.
    await expect(handle.transact((d) => d.getMap('data').set('name', 'bob'))).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(synced).toBe(false);
    expect(seen.closed).toBe(false);

    const written = await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/profile`, {
      key: alice.key,
      body: { value: { name: 'Alice' } },
    });
    expect(written.status).toBe(200);
    await handle.whenSynced;
    await vi.waitFor(() => expect(data(handle.doc)).toEqual({ name: 'Alice' }));
    expect(seen.permissions.at(-1)).toEqual({ access: 'read', reason: '' });
    expect(handle.waiting).toBe(false);
    expect(handle.access).toBe('read');

    // Live updates flow afterwards.
    await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/profile`, {
      key: alice.key,
      body: { value: { name: 'Alice B.' } },
    });
    await vi.waitFor(() => expect(data(handle.doc)).toEqual({ name: 'Alice B.' }));
    expect(seen.closed).toBe(false);
  });

  it('waits for a profile the owner creates with her own client', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const [a, b] = [await client(alice), await client(bob)];
    const name = `USER_PUBLIC/${alice.userId}/card`;
    const waiting = b.doc(name);
    const seen = watch(waiting);
    await vi.waitFor(() => expect(seen.permissions).toEqual([{ access: 'waiting', reason: '' }]));

    const mine = a.doc(name);
    await mine.whenSynced;
    await mine.transact((d) => d.getMap('data').set('bio', 'hello'));
    await mine.whenAcked();
    await waiting.whenSynced;
    await vi.waitFor(() => expect(data(waiting.doc)).toEqual({ bio: 'hello' }));
    expect(seen.permissions.at(-1)?.access).toBe('read');
    await mine.transact((d) => d.getMap('data').set('bio', 'hello again'));
    await vi.waitFor(() => expect(data(waiting.doc)).toEqual({ bio: 'hello again' }));
  });

  it('waits on an owner-read draft alike, and receives it once opened to read 2', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const draftPath = `/userdata/${alice.userId}/USER_PUBLIC/draft`;
    const name = `USER_PUBLIC/${alice.userId}/draft`;
    const created = await t.api('POST', draftPath, {
      key: alice.key,
      body: { value: { text: 'secret draft' }, read: 1 },
    });
    expect(created.status).toBe(200);
    // An absent document answers exactly the same.
    const b = await client(bob);
    const handle = b.doc(name);
    const absent = b.doc(`USER_PUBLIC/${alice.userId}/nothing-here`);
    const seen = watch(handle);
    const seenAbsent = watch(absent);
    await vi.waitFor(() => expect(seen.permissions).toEqual([{ access: 'waiting', reason: '' }]));
    await vi.waitFor(() => expect(seenAbsent.permissions).toEqual(seen.permissions));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(data(handle.doc)).toEqual({});
    expect(handle.closed).toBe(false);

    const opened = await t.api('POST', draftPath, {
      key: alice.key,
      body: { value: { text: 'published' }, read: 2 },
    });
    expect(opened.status).toBe(200);
    await handle.whenSynced;
    await vi.waitFor(() => expect(data(handle.doc)).toEqual({ text: 'published' }));
    expect(seen.permissions.at(-1)).toEqual({ access: 'read', reason: '' });
    expect(absent.waiting).toBe(true);
    expect(absent.closed).toBe(false);
  });

  it('waits for the PUBLIC_READ announcement until an admin writes it', async () => {
    const admin = await t.user('admin', Level.Admin);
    const bob = await t.user('bob');
    const b = await client(bob);
    const handle = b.doc('PUBLIC_READ/_/announcement');
    const seen = watch(handle);
    await vi.waitFor(() => expect(seen.permissions).toEqual([{ access: 'waiting', reason: '' }]));
    const posted = await t.api('POST', '/userdata/_/PUBLIC_READ/announcement', {
      key: admin.key,
      body: { value: { text: 'maintenance tonight' } },
    });
    expect(posted.status).toBe(200);
    await handle.whenSynced;
    await vi.waitFor(() => expect(data(handle.doc)).toEqual({ text: 'maintenance tonight' }));
    expect(handle.access).toBe('read');
  });

  it('a would-be sharee starts syncing a blob once it is shared, and is closed when the share is revoked', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const [a, b] = [await client(alice), await client(bob)];
    const own = a.blobs.open('board');
    await own.whenSynced;
    await own.transact((d) => d.getText('t').insert(0, 'shared board'));
    await own.whenAcked();
    const handle = b.doc(own.name);
    const seen = watch(handle);
    // Another user's blob answers like an absent one bob could create (docs/security.md, "Existence").
    await vi.waitFor(() => expect(seen.permissions).toEqual([{ access: 'read-write', reason: '' }]));
    expect(handle.doc.getText('t').toString()).toBe('');

    await a.blobs.share('board', bob.userId, 'read_only');
    await handle.whenSynced;
    await vi.waitFor(() => expect(handle.doc.getText('t').toString()).toBe('shared board'));
    expect(handle.access).toBe('read');

    await a.blobs.revoke('board', bob.userId);
    await vi.waitFor(() => expect(seen.closed).toBe(true));
    expect(seen.permissions.at(-1)?.access).toBe('none');
    expect(handle.closed).toBe(true);
    expect(await b.store.docs.docs('blob/')).toEqual([]);
    await expect(handle.transact((d) => d.getText('t').insert(0, 'late'))).rejects.toBeInstanceOf(SyncError);
  });

  it('a deleted document closes the handle of a reader who had access', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const b = await client(bob);
    const name = `USER_PUBLIC/${alice.userId}/gone`;
    const handle = b.doc(name);
    const seen = watch(handle);
    await vi.waitFor(() => expect(seen.permissions).toHaveLength(1));
    await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/gone`, {
      key: alice.key,
      body: { value: { v: 1 } },
    });
    await handle.whenSynced;
    const deleted = await t.api('DELETE', `/userdata/${alice.userId}/USER_PUBLIC/gone`, { key: alice.key });
    expect(deleted.status).toBeLessThan(300);
    await vi.waitFor(() => expect(seen.closed).toBe(true));
    expect(seen.permissions.at(-1)?.access).toBe('none');
  });
});
