import { type ClientOptions, createClient, indexedDbClientStore, type SyncClient } from '@scopesync/client';
import type { SyncError } from '@scopesync/core';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * What an app developer sees of blob ids and sharing against a real relay: random ids by
 * default, a visible error (and no lost work) on an id that is someone else's, and a "shared
 * with me" list instead of pasting ids around.
 */

let relay: TestRelay;
let clients: SyncClient[] = [];
afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  await relay?.close();
});

/** A browser profile: its IndexedDB survives the client being closed and started again. */
function browserProfile(): () => ReturnType<typeof indexedDbClientStore> {
  const indexedDB = new IDBFactory();
  return () => indexedDbClientStore({ name: 'scopesync', indexedDB, IDBKeyRange });
}

async function client(options: Partial<ClientOptions>): Promise<SyncClient> {
  const c = await createClient({
    url: relay.url,
    WebSocket,
    store: browserProfile()(),
    backoff: { initialMs: 20, maxMs: 200 },
    ...options,
  });
  clients.push(c);
  return c;
}

const text = (doc: Y.Doc): string => doc.getText('t').toString();

describe('blobs.create()', () => {
  it('gives every new blob its own unguessable id, and each creator owns theirs', async () => {
    relay = await startTestRelay({ rateLimit: false });
    const alice = await client({ apiKey: (await relay.user('alice')).key });
    const bob = await client({ apiKey: (await relay.user('bob')).key });
    const { id: myId, handle: mine } = alice.blobs.create();
    const { id: theirId, handle: theirs } = bob.blobs.create();
    const ids = [myId, theirId];
    expect(mine.name).toBe(`blob/${myId}`);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9]{22}$/);
    expect(new Set([...ids, alice.blobs.newId(), alice.blobs.newId()]).size).toBe(4);
    await mine.transact((d) => d.getText('t').insert(0, 'alice notes'));
    await theirs.transact((d) => d.getText('t').insert(0, 'bob notes'));
    await Promise.all([mine.whenAcked(), theirs.whenAcked()]);
    const meta = await relay.api('GET', `/blob/${ids[0]}/meta`, { key: (await relay.user('x')).key });
    expect(meta.status).toBe(404); // nobody else sees it
  });
});

describe('an id that belongs to someone else', () => {
  it('shows a Conflict on the handle at once, stops retrying, and keeps the edits on the device', async () => {
    relay = await startTestRelay({ rateLimit: false });
    const aliceKey = (await relay.user('alice')).key;
    const bobKey = (await relay.user('bob')).key;
    const alice = await client({ apiKey: aliceKey });
    const owned = alice.blobs.open('notes.md');
    await owned.transact((d) => d.getText('t').insert(0, 'alice was here first'));
    await owned.whenAcked();

    const profile = browserProfile();
    const bob = await client({ apiKey: bobKey, store: profile() });
    const taken = bob.blobs.open('notes.md');
    const denied: SyncError[] = [];
    taken.on('denied', ({ error }) => denied.push(error));
    await taken.whenSynced;
    await taken.transact((d) => d.getText('t').insert(0, 'bob draft'));
    await vi.waitFor(() => expect(denied).toHaveLength(1));
    expect(denied[0]).toMatchObject({ kind: 'Conflict' });
    expect(denied[0]?.message).toMatch(/taken by someone else/);
    expect(taken.closed).toBe(true);
    // Bob's work is still in front of him, and Alice's blob never saw it.
    expect(text(taken.doc)).toBe('bob draft');
    expect(text(owned.doc)).toBe('alice was here first');

    // Still on the device after a restart, so the app can move it to a blob of Bob's own.
    await bob.close();
    clients = clients.filter((c) => c !== bob);
    const again = await client({ apiKey: bobKey, store: profile(), connect: false });
    const kept = again.blobs.open('notes.md');
    await kept.whenLoaded;
    expect(text(kept.doc)).toBe('bob draft');
    const { handle: moved } = again.blobs.create();
    await moved.transact((d) => Y.applyUpdate(d, Y.encodeStateAsUpdate(kept.doc)));
    again.connect();
    await moved.whenAcked();
    expect(text(moved.doc)).toBe('bob draft');
  });
});

describe('a raw blob under someone else’s id', () => {
  it('fails the upload with a Conflict that says the id is taken, and leaves their bytes alone', async () => {
    relay = await startTestRelay({ rateLimit: false });
    const alice = await client({ apiKey: (await relay.user('alice')).key });
    const bob = await client({ apiKey: (await relay.user('bob')).key });
    await alice.blobs.put('avatar.png', new Uint8Array([1, 2, 3]));
    await expect(bob.blobs.put('avatar.png', new Uint8Array([9]))).rejects.toMatchObject({
      kind: 'Conflict',
      message: expect.stringMatching(/taken by someone else/),
    });
    expect((await alice.blobs.get('avatar.png')).bytes).toEqual(new Uint8Array([1, 2, 3]));
    // A fresh id works at once.
    const id = bob.blobs.newId();
    expect((await bob.blobs.put(id, new Uint8Array([9]), { ifVersion: 0 })).owner).toBe(bob.userId);
  });
});

describe('blobs.sharedWithMe()', () => {
  it('lists what others shared with me, with owner and level, so I can open it without pasting ids', async () => {
    relay = await startTestRelay({ rateLimit: false });
    const aliceUser = await relay.user('alice');
    const bobUser = await relay.user('bob');
    const alice = await client({ apiKey: aliceUser.key });
    const bob = await client({ apiKey: bobUser.key });
    expect(await bob.blobs.sharedWithMe()).toEqual([]);
    const { id, handle: board } = alice.blobs.create();
    await board.transact((d) => d.getText('t').insert(0, 'plan'));
    await board.whenAcked();
    await alice.blobs.share(id, bobUser.userId, 'read_write');

    const incoming = await bob.blobs.sharedWithMe();
    expect(incoming).toEqual([
      expect.objectContaining({ blobId: id, owner: aliceUser.userId, accessLevel: 'read_write' }),
    ]);
    const opened = bob.blobs.open(incoming[0]?.blobId ?? '');
    await vi.waitFor(() => expect(text(opened.doc)).toBe('plan'));
    // Alice's own list shows nothing she shared out.
    expect(await alice.blobs.sharedWithMe()).toEqual([]);

    await alice.blobs.revoke(id, bobUser.userId);
    expect(await bob.blobs.sharedWithMe()).toEqual([]);
  });
});
