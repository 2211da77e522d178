import { SyncError } from '@scopesync/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type * as Y from 'yjs';
import { FakeRelay } from '../test-support/fake-relay.ts';
import { profile, testClients } from '../test-support/test-clients.ts';
import { KV_TABLES } from './client-store.ts';
import type { DocCipher } from './doc-cipher.ts';
import { type DocMeta, decodeEntry, EntryTag } from './local-doc-log.ts';

const ALICE = 'user_00000000000000a1';
const BOB = 'user_00000000000000b0';
const { start, stop, closeAll } = testClients();
afterEach(closeAll);

const text = (handle: { doc: Y.Doc }): string => handle.doc.getText('t').toString();

describe('local storage', () => {
  it('keeps offline edits across a restart, still pending, and the log does not grow on reload', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const store = profile();
    const a = await start(relay, { apiKey: key, store: store(), connect: false });
    const doc = a.doc(`USER_PUBLIC/${ALICE}/notes`);
    await doc.whenLoaded;
    for (const word of ['one ', 'two ', 'three']) {
      await doc.transact((d) => d.getText('t').insert(d.getText('t').length, word));
    }
    expect(doc.pending).toBe(3);
    await stop(a);

    for (let round = 0; round < 3; round++) {
      const again = await start(relay, { apiKey: key, store: store(), connect: false });
      const reopened = again.doc(`USER_PUBLIC/${ALICE}/notes`);
      await reopened.whenLoaded;
      expect(text(reopened)).toBe('one two three');
      expect(reopened.pending).toBe(3);
      expect(await again.store.docs.load(`USER_PUBLIC/${ALICE}/notes`)).toHaveLength(3);
      await stop(again);
    }
  });

  it('stores a local edit and its outbox entry in one append', async () => {
    const relay = new FakeRelay();
    const store = profile()();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store, connect: false });
    const doc = a.doc(`USER_PUBLIC/${ALICE}/atomic`);
    await doc.transact((d) => d.getMap('m').set('k', 1));
    const entries = await store.docs.load(`USER_PUBLIC/${ALICE}/atomic`);
    // The stored entry itself says "local, unsent": there is no second record to lose.
    expect(entries.map((e) => decodeEntry(e.seq, e.data).tag)).toEqual([EntryTag.Local]);
  });

  it('compacts a long log by merging entries, keeping what is unsent', async () => {
    const relay = new FakeRelay();
    const store = profile();
    const a = await start(relay, {
      apiKey: relay.addUser(ALICE),
      store: store(),
      connect: false,
      compactAfter: 10,
    });
    const doc = a.doc(`USER_PUBLIC/${ALICE}/long`);
    for (let i = 0; i < 45; i++) await doc.transact((d) => d.getArray<number>('a').push([i]));
    await doc.whenStored();
    await vi.waitFor(async () => expect((await a.store.docs.load(doc.name)).length).toBeLessThanOrEqual(11));
    await stop(a);
    const again = await start(relay, {
      apiKey: relay.addUser(ALICE),
      store: store(),
      connect: true,
      compactAfter: 10,
    });
    const reopened = again.doc(`USER_PUBLIC/${ALICE}/long`);
    await reopened.whenLoaded;
    expect(reopened.doc.getArray('a').toArray()).toEqual(Array.from({ length: 45 }, (_, i) => i));
    expect(reopened.pending).toBeGreaterThan(0);
    await reopened.whenAcked();
    expect(relay.doc(reopened.name).getArray('a').toArray()).toEqual(Array.from({ length: 45 }, (_, i) => i));
  });

  it('takes a local edit that could not be stored out of the doc, and whenAcked reports it (finding 12)', async () => {
    const relay = new FakeRelay();
    const store = profile()();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store });
    const name = `USER_PUBLIC/${ALICE}/unstored`;
    const doc = a.doc(name);
    const items = () => doc.doc.getArray<string>('items').toArray();
    await doc.transact((d) => d.getArray<string>('items').push(['one']));
    await doc.whenAcked();
    // The store fails one append (a full disk, a quota, a seal that cannot be made yet).
    const append = store.docs.append.bind(store.docs);
    store.docs.append = async () => {
      store.docs.append = append;
      throw new SyncError('Internal', 'the disk is full');
    };
    await expect(doc.transact((d) => d.getArray<string>('items').push(['two']))).rejects.toThrow(
      /disk is full/,
    );
    // Neither durable nor in the outbox: not in the doc either, so no later edit builds on it.
    await vi.waitFor(() => expect(items()).toEqual(['one']));
    await expect(doc.whenAcked()).rejects.toThrow(/disk is full/);
    await doc.transact((d) => d.getArray<string>('items').push(['three']));
    await doc.whenAcked();
    expect(items()).toEqual(['one', 'three']);
    // The relay got every stored edit and can place each one.
    expect(relay.doc(name).getArray<string>('items').toArray()).toEqual(['one', 'three']);
  });
});

describe('sync', () => {
  it('syncs two clients through the relay, acking local edits', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const a = await start(relay, { apiKey: key, store: profile()() });
    const b = await start(relay, { apiKey: key, store: profile()() });
    const name = `USER_PUBLIC/${ALICE}/shared`;
    const da = a.doc(name);
    const db = b.doc(name);
    await Promise.all([da.whenSynced, db.whenSynced]);
    const remote = vi.fn();
    db.on('remote-update', remote);
    await da.transact((d) => d.getText('t').insert(0, 'hello'));
    await da.whenAcked();
    expect(da.pending).toBe(0);
    await vi.waitFor(() => expect(text(db)).toBe('hello'));
    expect(remote).toHaveBeenCalled();
    // Local edits travel as tracked updates (105), never as unacknowledged sync updates.
    const kinds = relay.received.filter((f) => f.docName === name).map((f) => f.message.type);
    expect(kinds).toContain('tracked-update');
    expect(kinds).not.toContain('sync-update');
  });

  it('uses one socket for every doc and unsubscribes on release', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()() });
    const one = a.doc(`USER_PUBLIC/${ALICE}/one`);
    const two = a.doc('PUBLIC_RW/_/two');
    await Promise.all([one.whenSynced, two.whenSynced]);
    expect(relay.openSockets).toBe(1);
    await two.release();
    await vi.waitFor(() =>
      expect(
        relay.received.some((f) => f.docName === 'PUBLIC_RW/_/two' && f.message.type === 'unsubscribe'),
      ).toBe(true),
    );
    expect(two.closed).toBe(true);
    expect(one.closed).toBe(false);
  });

  it('sends edits made offline on reconnect and both sides converge', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const a = await start(relay, { apiKey: key, store: profile()() });
    const b = await start(relay, { apiKey: key, store: profile()() });
    const name = `USER_PUBLIC/${ALICE}/offline`;
    const da = a.doc(name);
    const db = b.doc(name);
    await Promise.all([da.whenSynced, db.whenSynced]);
    a.disconnect();
    await da.transact((d) => d.getMap('m').set('from-a', 1));
    await db.transact((d) => d.getMap('m').set('from-b', 2));
    await db.whenAcked();
    expect(da.pending).toBe(1);
    a.connect();
    await da.whenAcked();
    await vi.waitFor(() => {
      expect(da.doc.getMap('m').toJSON()).toEqual({ 'from-a': 1, 'from-b': 2 });
      expect(db.doc.getMap('m').toJSON()).toEqual({ 'from-a': 1, 'from-b': 2 });
    });
  });

  it('reconnects with backoff after the relay comes back', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()() });
    const doc = a.doc(`USER_PUBLIC/${ALICE}/back`);
    await doc.whenSynced;
    relay.stop();
    await vi.waitFor(() => expect(a.status).toBe('connecting'));
    await doc.transact((d) => d.getMap('m').set('k', 'v'));
    relay.start();
    await doc.whenAcked();
    expect(relay.doc(doc.name).getMap('m').get('k')).toBe('v');
  });

  it('sends the edits of a doc released while offline once the relay is back, without the doc being opened again', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const a = await start(relay, { apiKey: key, store: profile()(), cipherFor: testCipher });
    await vi.waitFor(() => expect(a.status).toBe('online'));
    relay.stop();
    // userData.set of a private value releases its doc at once; so does an app closing a doc.
    await a.userData.set('USER_PRIVATE', ALICE, 'prefs', { theme: 'dark' });
    const notes = a.doc(`USER_PUBLIC/${ALICE}/notes`);
    await notes.transact((d) => d.getText('t').insert(0, 'written offline'));
    await notes.release();
    relay.start();
    await vi.waitFor(() =>
      expect(text({ doc: relay.doc(`USER_PUBLIC/${ALICE}/notes`) })).toBe('written offline'),
    );
    const b = await start(relay, { apiKey: key, store: profile()(), cipherFor: testCipher });
    // Until b's socket opens, a private value it has never seen reads as none (no HTTP fallback).
    await vi.waitFor(
      async () => expect(await b.userData.get('USER_PRIVATE', ALICE, 'prefs')).toEqual({ theme: 'dark' }),
      { timeout: 5000 },
    );
  });

  it('sends the unsent edits of an encrypted blob sealed, opening it encrypted though its name does not say so', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()(), cipherFor: testCipher });
    await vi.waitFor(() => expect(a.status).toBe('online'));
    relay.stop();
    const blob = a.doc('blob/sealed-offline', { encrypted: true });
    await blob.transact((d) => d.getText('t').insert(0, 'sealed while offline'));
    await blob.release();
    relay.start();
    await vi.waitFor(() => expect(relay.encLogs.get('blob/sealed-offline')).toHaveLength(1), {
      timeout: 5000,
    });
    expect(
      relay.received.filter((f) => f.docName === 'blob/sealed-offline').map((f) => f.message.type),
    ).not.toContain('tracked-update');
    for (const frame of relay.rawFrames) expect(contains(frame, 'sealed while offline')).toBe(false);
  });

  it('sends after a restart the edits of a doc the app never opens again, and forgets the doc once the relay has them', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const store = profile();
    const name = `USER_PUBLIC/${ALICE}/left`;
    const a = await start(relay, { apiKey: key, store: store(), connect: false });
    const doc = a.doc(name);
    await doc.transact((d) => d.getText('t').insert(0, 'from last session'));
    await stop(a);

    const again = await start(relay, { apiKey: key, store: store() });
    await vi.waitFor(() => expect(text({ doc: relay.doc(name) })).toBe('from last session'), {
      timeout: 5000,
    });
    // Acked and released: the doc is no longer marked, so the next socket does not open it.
    await vi.waitFor(async () =>
      expect((await again.store.kv.get<DocMeta>(KV_TABLES.docs, name))?.unsent).toBe(false),
    );
    const subscribes = (): number =>
      relay.received.filter((f) => f.docName === name && f.message.type === 'subscribe').length;
    const before = subscribes();
    again.disconnect();
    again.connect();
    await vi.waitFor(() => expect(again.status).toBe('online'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(subscribes()).toBe(before);
  });
});

describe('permissions', () => {
  it('fails a write to another user’s USER_PUBLIC at once, offline too, and does not apply it', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()(), connect: false });
    const doc = a.doc(`USER_PUBLIC/${BOB}/profile`);
    const error = await doc.transact((d) => d.getMap('m').set('x', 1)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SyncError);
    expect((error as SyncError).kind).toBe('Forbidden');
    expect(doc.doc.getMap('m').size).toBe(0);
    expect(doc.pending).toBe(0);
    await expect(a.userData.set('USER_PUBLIC', BOB, 'profile', { x: 1 })).rejects.toMatchObject({
      kind: 'Forbidden',
    });
  });

  it('refuses to open another user’s USER_PRIVATE doc', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()(), connect: false });
    expect(() => a.doc(`USER_PRIVATE/${BOB}/secret`)).toThrow(expect.objectContaining({ kind: 'Forbidden' }));
  });

  it('a read-only doc: sees edits, its own writes fail at once, direct edits are undone', async () => {
    const relay = new FakeRelay();
    const name = 'blob/board';
    relay.addUser(ALICE);
    relay.setAccess(BOB, name, 'read');
    const owner = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()() });
    const reader = await start(relay, { apiKey: relay.addUser(BOB), store: profile()() });
    const od = owner.blobs.open('board');
    const rd = reader.blobs.open('board');
    await Promise.all([od.whenSynced, rd.whenSynced]);
    expect(rd.access).toBe('read');
    await od.transact((d) => d.getText('t').insert(0, 'owner'));
    await vi.waitFor(() => expect(text(rd)).toBe('owner'));
    await expect(rd.transact((d) => d.getText('t').insert(0, 'x'))).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    expect(text(rd)).toBe('owner');

    const errors: SyncError[] = [];
    rd.on('error', (e) => errors.push(e));
    const reset = new Promise<Y.Doc>((resolve) => rd.on('reset', ({ doc }) => resolve(doc)));
    rd.doc.getText('t').insert(0, 'sneaky ');
    expect(errors.map((e) => e.kind)).toEqual(['Forbidden']);
    const fresh = await reset;
    expect(fresh.getText('t').toString()).toBe('owner');
    expect(rd.pending).toBe(0);
    expect(relay.doc(name).getText('t').toString()).toBe('owner');
  });

  it('remembers read-only access across a restart: the write fails at once while offline', async () => {
    const relay = new FakeRelay();
    relay.setAccess(BOB, 'blob/readonly', 'read');
    const store = profile();
    const first = await start(relay, { apiKey: relay.addUser(BOB), store: store() });
    const doc = first.blobs.open('readonly');
    await doc.whenSynced;
    expect(doc.access).toBe('read');
    await stop(first);

    relay.stop();
    const offline = await start(relay, { apiKey: relay.addUser(BOB), store: store() });
    const again = offline.blobs.open('readonly');
    await again.whenLoaded;
    expect(again.access).toBe('read');
    await expect(again.transact((d) => d.getMap('m').set('x', 1))).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    expect(again.pending).toBe(0);
  });

  it('a write the relay refuses (104) surfaces as an error and the doc is reconciled', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()() });
    const doc = a.doc(`USER_PUBLIC/${ALICE}/refused`);
    await doc.whenSynced;
    await doc.transact((d) => d.getMap('m').set('kept', 1));
    await doc.whenAcked();
    const errors: SyncError[] = [];
    doc.on('error', (e) => errors.push(e));
    const reset = new Promise<Y.Doc>((resolve) => doc.on('reset', ({ doc }) => resolve(doc)));
    relay.refuseNextWrite(doc.name, 'TooLarge');
    await doc.transact((d) => d.getMap('m').set('refused', 2));
    // Waiting for the ack of a refused edit reports the refusal; it is not an ack.
    await expect(doc.whenAcked()).rejects.toMatchObject({ kind: 'TooLarge' });
    const fresh = await reset;
    expect(errors.map((e) => e.kind)).toEqual(['TooLarge']);
    expect(fresh.getMap('m').toJSON()).toEqual({ kept: 1 });
    expect(doc.pending).toBe(0);
    // Writing again works: the refusal was about that one update.
    await doc.transact((d) => d.getMap('m').set('later', 3));
    await doc.whenAcked();
    expect(relay.doc(doc.name).getMap('m').toJSON()).toEqual({ kept: 1, later: 3 });
  });

  it('a doc that is absent or hidden on subscribe waits, keeps its local copy, and syncs once readable', async () => {
    const relay = new FakeRelay();
    const store = profile()();
    const reader = await start(relay, { apiKey: relay.addUser(BOB), store });
    const name = `USER_PUBLIC/${ALICE}/profile`;
    relay.hide(BOB, name);
    relay.doc(name).getMap('data').set('name', 'Alice');
    const doc = reader.doc(name);
    const permissions: Array<{ access: string; reason: string }> = [];
    doc.on('permission', (p) => permissions.push({ access: p.access, reason: p.reason }));
    let synced = false;
    void doc.whenSynced.then(() => {
      synced = true;
    });
    await vi.waitFor(() => expect(permissions).toEqual([{ access: 'waiting', reason: '' }]));
    expect(doc.waiting).toBe(true);
    expect(doc.closed).toBe(false);
    // decide() still refuses what Bob may not write.
    await expect(doc.transact((d) => d.getMap('data').set('x', 1))).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    // A reconnect while waiting waits again.
    reader.disconnect();
    reader.connect();
    await vi.waitFor(() => expect(permissions).toHaveLength(2));
    expect(permissions[1]).toEqual({ access: 'waiting', reason: '' });
    expect(synced).toBe(false);
    expect(doc.closed).toBe(false);

    relay.reveal(BOB, name, 'read');
    await doc.whenSynced;
    expect(doc.doc.getMap('data').toJSON()).toEqual({ name: 'Alice' });
    expect(doc.access).toBe('read');
    expect(doc.waiting).toBe(false);
    // Losing read access later is a revocation: closed, local copy dropped.
    const closed = new Promise<string>((resolve) => doc.on('closed', ({ reason }) => resolve(reason)));
    relay.setAccess(BOB, name, 'none');
    expect(await closed).toMatch(/revoked/);
    expect(await reader.store.docs.docs('USER_PUBLIC/')).toEqual([]);
  });

  it('revocation closes the handle, emits permission none and drops the local copy', async () => {
    const relay = new FakeRelay();
    const reader = await start(relay, { apiKey: relay.addUser(BOB), store: profile()() });
    const doc = reader.blobs.open('shared');
    await doc.whenSynced;
    const permissions: string[] = [];
    doc.on('permission', ({ access }) => permissions.push(access));
    const closed = new Promise<string>((resolve) => doc.on('closed', ({ reason }) => resolve(reason)));
    relay.setAccess(BOB, 'blob/shared', 'none');
    expect(await closed).toMatch(/revoked/);
    expect(permissions).toEqual(['none']);
    expect(doc.closed).toBe(true);
    expect(await reader.store.docs.docs('blob/')).toEqual([]);
  });
});

describe('authentication', () => {
  it('stops for good on close code 4401 and reports auth-error once', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const a = await start(relay, { apiKey: key, store: profile()() });
    const doc = a.doc(`USER_PUBLIC/${ALICE}/x`);
    await doc.whenSynced;
    const errors: SyncError[] = [];
    a.on('auth-error', (e) => errors.push(e));
    relay.revokeKey(key);
    await vi.waitFor(() => expect(a.status).toBe('auth-failed'));
    const attempts = relay.connectAttempts;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(relay.connectAttempts).toBe(attempts);
    expect(errors.map((e) => e.kind)).toEqual(['Unauthorized']);
    // Local work goes on.
    await doc.transact((d) => d.getMap('m').set('still', 'works'));
  });

  it('tells a refused upgrade (a browser sees only 1006) from a network failure via /keys/validate', async () => {
    const relay = new FakeRelay();
    relay.authFailure = 'refuse-upgrade';
    const key = relay.addUser(ALICE);
    const a = await start(relay, { apiKey: key, store: profile()(), connect: false });
    relay.revokeKey(key);
    const failed = new Promise<SyncError>((resolve) => a.on('auth-error', resolve));
    a.connect();
    expect((await failed).kind).toBe('Unauthorized');
    expect(a.status).toBe('auth-failed');
  });

  it('registers a device, keeps the key encrypted, and starts offline from the cached identity', async () => {
    const relay = new FakeRelay();
    const store = profile();
    const a = await start(relay, { deviceName: 'laptop', store: store() });
    const userId = a.userId;
    expect(userId).toMatch(/^user_[0-9a-f]{16}$/);
    expect(a.level).toBe(1);
    const records = await a.store.kv.list('identity');
    const dump = JSON.stringify(records, (_k, v) =>
      v instanceof Uint8Array ? new TextDecoder().decode(v) : v,
    );
    expect(dump).not.toContain('key-laptop');
    await stop(a);

    relay.stop();
    const offline = await start(relay, { store: store() });
    expect(offline.userId).toBe(userId);
    const doc = offline.doc(`USER_PUBLIC/${userId}/draft`);
    await doc.transact((d) => d.getMap('m').set('k', 1));
    relay.start();
    await doc.whenAcked();
  });

  it('rejects a key the relay does not know', async () => {
    const relay = new FakeRelay();
    await expect(start(relay, { apiKey: 'nope', store: profile()() })).rejects.toMatchObject({
      kind: 'Unauthorized',
    });
  });
});

/** A trivial cipher for the encrypted path: a marker, then the update XOR 0x5a. Not cryptography. */
function testCipher(docName: string): DocCipher {
  const tag = new TextEncoder().encode(`TENC:${docName}:`);
  const xor = (bytes: Uint8Array): Uint8Array => bytes.map((b) => b ^ 0x5a);
  const seal = (update: Uint8Array): Uint8Array => {
    const out = new Uint8Array(tag.length + update.length);
    out.set(tag);
    out.set(xor(update), tag.length);
    return out;
  };
  return {
    seal,
    sealSnapshot: seal,
    open: (envelope) => {
      if (!tag.every((b, i) => envelope[i] === b)) throw new SyncError('InvalidMessage', 'not our envelope');
      return xor(envelope.subarray(tag.length));
    },
  };
}

function contains(haystack: Uint8Array, needle: string): boolean {
  const n = new TextEncoder().encode(needle);
  outer: for (let i = 0; i + n.length <= haystack.length; i++) {
    for (let j = 0; j < n.length; j++) if (haystack[i + j] !== n[j]) continue outer;
    return true;
  }
  return false;
}

describe('encrypted documents', () => {
  it('without a cipher, seals USER_PRIVATE docs with the built-in encryption: never plaintext, even unsent', async () => {
    const relay = new FakeRelay(); // no key routes: the envelopes stay in the outbox
    const store = profile()();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store });
    const diary = a.doc(`USER_PRIVATE/${ALICE}/diary`);
    await diary.transact((d) => d.getText('t').insert(0, 'built-in secret'));
    await diary.whenStored();
    const entries = await store.docs.load(diary.name);
    expect(entries.length).toBeGreaterThan(0);
    for (const entry of entries) expect(contains(entry.data, 'built-in secret')).toBe(false);
    for (const frame of relay.rawFrames) expect(contains(frame, 'built-in secret')).toBe(false);
    expect(relay.received.filter((f) => f.message.type === 'enc-append')).toEqual([]);
  });

  it('syncs through the encrypted channel: no plaintext on the wire or at rest', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const secret = 'attack at dawn';
    const name = `USER_PRIVATE/${ALICE}/diary`;
    const storeA = profile()();
    const a = await start(relay, { apiKey: key, store: storeA, cipherFor: testCipher });
    const b = await start(relay, { apiKey: key, store: profile()(), cipherFor: testCipher });
    const da = a.doc(name);
    await da.whenSynced;
    await da.transact((d) => d.getText('t').insert(0, secret));
    await da.whenAcked();

    const db = b.doc(name);
    await db.whenSynced;
    expect(text(db)).toBe(secret);
    await db.transact((d) => d.getText('t').insert(secret.length, '!'));
    await vi.waitFor(() => expect(text(da)).toBe(`${secret}!`));

    const types = new Set(relay.received.filter((f) => f.docName === name).map((f) => f.message.type));
    expect([...types].sort()).toEqual(['enc-append', 'enc-fetch', 'subscribe']);
    expect(relay.received.find((f) => f.message.type === 'subscribe')?.message).toMatchObject({
      mode: 'encrypted',
    });
    for (const frame of relay.rawFrames) expect(contains(frame, secret)).toBe(false);
    for (const entry of await storeA.docs.load(name)) expect(contains(entry.data, secret)).toBe(false);
  });

  it('seals an edit again when the relay says the key rotated, but drops one refused as a plain Conflict', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()(), cipherFor: testCipher });
    const diary = a.doc(`USER_PRIVATE/${ALICE}/diary`);
    await diary.whenSynced;
    const errors: SyncError[] = [];
    diary.on('error', (e) => errors.push(e));
    const appends = (): number => relay.received.filter((f) => f.message.type === 'enc-append').length;

    relay.refuseNextWrite(diary.name, 'KeyRotated');
    await diary.transact((d) => d.getText('t').insert(0, 'kept'));
    await diary.whenAcked();
    expect(errors).toEqual([]);
    expect(appends()).toBe(2); // refused once, then sealed again and stored
    expect(relay.encLogs.get(diary.name)).toHaveLength(1);

    relay.refuseNextWrite(diary.name, 'Conflict');
    await diary.transact((d) => d.getText('t').insert(4, ' lost'));
    await expect(diary.whenAcked()).rejects.toMatchObject({ kind: 'Conflict' });
    await vi.waitFor(() => expect(text(diary)).toBe('kept'));
    expect(appends()).toBe(3); // not sealed again
    expect(errors.map((e) => e.kind)).toEqual(['Conflict']);
  });

  it('keeps userData of USER_PRIVATE encrypted and readable by the owner’s other device', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const a = await start(relay, { apiKey: key, store: profile()(), cipherFor: testCipher });
    await a.userData.set('USER_PRIVATE', ALICE, 'prefs', { theme: 'dark-secret-theme' });
    const b = await start(relay, { apiKey: key, store: profile()(), cipherFor: testCipher });
    // The first device's write may land before its socket opens: its doc, released at once,
    // goes out on the socket's sweep of unsent docs. This wait once ran out when it did not.
    await vi.waitFor(
      async () =>
        expect(await b.userData.get('USER_PRIVATE', ALICE, 'prefs')).toEqual({ theme: 'dark-secret-theme' }),
      { timeout: 10_000 },
    );
    for (const frame of relay.rawFrames) expect(contains(frame, 'dark-secret-theme')).toBe(false);
  });

  it('uploads a snapshot once the relay log grows, and a new device catches up from it', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const name = `USER_PRIVATE/${ALICE}/log`;
    const a = await start(relay, { apiKey: key, store: profile()(), cipherFor: testCipher, compactAfter: 5 });
    const da = a.doc(name);
    await da.whenSynced;
    for (let i = 0; i < 12; i++) {
      await da.transact((d) => d.getArray<number>('a').push([i]));
      await da.whenAcked();
    }
    await vi.waitFor(() =>
      expect(relay.received.some((f) => f.docName === name && f.message.type === 'enc-snapshot')).toBe(true),
    );
    await vi.waitFor(() => expect(relay.encLogs.get(name)?.length ?? 99).toBeLessThan(12));
    const b = await start(relay, { apiKey: key, store: profile()(), cipherFor: testCipher });
    const db = b.doc(name);
    await db.whenSynced;
    expect(db.doc.getArray('a').toArray()).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });
});
