import { type ClientOptions, createClient, indexedDbClientStore, type SyncClient } from '@scopesync/client';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * First launch with the relay unreachable (docs/offline.md): the app starts, knows its user id
 * at once (the one its own signing key names), keeps what the user writes, survives a restart,
 * and syncs everything once the relay appears — under the same id. And what a registered app
 * writes offline to documents it does not hold open any more reaches the relay on the next
 * socket, without the app opening them again (docs/offline.md, *Writes to documents nobody
 * holds open*).
 */

let relays: TestRelay[] = [];
let clients: SyncClient[] = [];
afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const r of relays) await r.close();
  relays = [];
});

/** A loopback URL nobody listens on yet (a relay started and stopped at once gives its port back). */
async function downRelayUrl(): Promise<{ url: string; port: number }> {
  const probe = await startTestRelay({ rateLimit: false });
  const port = Number(new URL(probe.url).port);
  await probe.close();
  return { url: probe.url, port };
}

async function relayOn(port: number): Promise<TestRelay> {
  const relay = await startTestRelay({ rateLimit: false, port });
  relays.push(relay);
  return relay;
}

function browserProfile(): () => ReturnType<typeof indexedDbClientStore> {
  const indexedDB = new IDBFactory();
  return () => indexedDbClientStore({ name: 'scopesync', indexedDB, IDBKeyRange });
}

async function launch(url: string, options: Partial<ClientOptions>): Promise<SyncClient> {
  const c = await createClient({
    url,
    WebSocket,
    deviceName: 'laptop',
    backoff: { initialMs: 20, maxMs: 100 },
    ...options,
  });
  clients.push(c);
  return c;
}

async function quit(c: SyncClient): Promise<void> {
  await c.close();
  clients = clients.filter((x) => x !== c);
}

describe('first launch with the relay down', () => {
  it('starts, keeps the user’s writes under their final id, and syncs them once the relay is up', async () => {
    const { url, port } = await downRelayUrl();
    const app = await launch(url, { store: browserProfile()() });
    expect(app.registered).toBe(false);
    const me = app.userId as string;
    expect(me).toMatch(/^user_[0-9a-f]{16}$/);
    expect(app.level).toBe(1);
    await app.userData.set('USER_PUBLIC', me, 'profile', { name: 'Ada' });
    await app.userData.set('USER_PRIVATE', me, 'diary', { day: 1, text: 'offline' });
    expect(await app.userData.get('USER_PUBLIC', me, 'profile')).toEqual({ name: 'Ada' });
    expect(await app.userData.get('USER_PRIVATE', me, 'diary')).toEqual({ day: 1, text: 'offline' });

    const relay = await relayOn(port);
    await vi.waitFor(() => expect(app.registered).toBe(true), { timeout: 10_000 });
    // The relay registered the device under the id the app has used all along.
    expect(app.userId).toBe(me);
    await app.userData.set('USER_PUBLIC', me, 'profile', { name: 'Ada' }, { waitForAck: true });
    await app.userData.update('USER_PRIVATE', me, 'diary', { day: 1 }, { waitForAck: true });
    const served = await relay.api('GET', `/userdata/${me}/USER_PUBLIC/profile`);
    expect(served.json).toMatchObject({ value: { name: 'Ada' }, owner: me });
    // The private value is on the relay too (acknowledged above), as ciphertext: a fresh device
    // of the same user reads it back.
    const phrase = await app.encryption.exportRecoveryPhrase();
    const other = await launch(relay.url, {
      store: browserProfile()(),
      recoveryPhrase: phrase,
      deviceName: 'phone',
    });
    expect(other.userId).toBe(me);
    await vi.waitFor(async () =>
      expect(await other.userData.get('USER_PRIVATE', me, 'diary')).toEqual({ day: 1, text: 'offline' }),
    );
  });

  it('keeps the data and the id across a restart before the relay ever appears, then syncs it all', async () => {
    const { url, port } = await downRelayUrl();
    const profile = browserProfile();
    const first = await launch(url, { store: profile() });
    const me = first.userId as string;
    await first.userData.set('USER_PUBLIC', me, 'todo', { a: 'buy milk' });
    await quit(first);

    const second = await launch(url, { store: profile() });
    expect(second.registered).toBe(false);
    expect(second.userId).toBe(me);
    expect(await second.userData.get('USER_PUBLIC', me, 'todo')).toEqual({ a: 'buy milk' });
    await second.userData.update('USER_PUBLIC', me, 'todo', { b: 'call mum' });

    const relay = await relayOn(port);
    await vi.waitFor(() => expect(second.registered).toBe(true), { timeout: 10_000 });
    expect(second.userId).toBe(me);
    await second.userData.update('USER_PUBLIC', me, 'todo', {}, { waitForAck: true });
    const served = await relay.api('GET', `/userdata/${me}/USER_PUBLIC/todo`);
    expect(served.json).toMatchObject({ value: { a: 'buy milk', b: 'call mum' }, owner: me });

    // Registered for good: the next start uses the stored key and does not register again.
    await quit(second);
    const third = await launch(url, { store: profile() });
    expect(third.registered).toBe(true);
    expect(third.userId).toBe(me);
  });

  it('registers during the next start when the relay came up while the app was closed', async () => {
    const { url, port } = await downRelayUrl();
    const profile = browserProfile();
    const first = await launch(url, { store: profile() });
    const me = first.userId as string;
    await first.userData.set('USER_PUBLIC', me, 'status', { text: 'written offline' });
    await quit(first);

    const relay = await relayOn(port);
    const next = await launch(url, { store: profile() });
    expect(next.registered).toBe(true);
    expect(next.userId).toBe(me);
    // The app does not open the value again: the next socket sends what the last session left.
    await vi.waitFor(
      async () =>
        expect((await relay.api('GET', `/userdata/${me}/USER_PUBLIC/status`)).json).toMatchObject({
          value: { text: 'written offline' },
        }),
      { timeout: 10_000 },
    );
  });
});

describe('writes to documents nobody holds open', () => {
  it('reach the user’s other device once the app is back online, though it never opens them again', async () => {
    const relay = await relayOn(0);
    const app = await launch(relay.url, { store: browserProfile()() });
    await vi.waitFor(() => expect(app.status).toBe('online'), { timeout: 10_000 });
    const me = app.userId as string;
    app.disconnect();
    // userData.set of a private value (built-in encryption) releases its document at once; the
    // app closes the other one itself.
    await app.userData.set('USER_PRIVATE', me, 'diary', { text: 'written offline' });
    const notes = app.doc(`USER_PUBLIC/${me}/notes`);
    await notes.transact((d) => d.getText('t').insert(0, 'closed offline'));
    await notes.release();
    app.connect();

    const phone = await launch(relay.url, {
      store: browserProfile()(),
      recoveryPhrase: await app.encryption.exportRecoveryPhrase(),
      deviceName: 'phone',
    });
    expect(phone.userId).toBe(me);
    await vi.waitFor(
      async () =>
        expect(await phone.userData.get('USER_PRIVATE', me, 'diary')).toEqual({ text: 'written offline' }),
      { timeout: 15_000 },
    );
    const copy = phone.doc(`USER_PUBLIC/${me}/notes`);
    await vi.waitFor(() => expect(copy.doc.getText('t').toString()).toBe('closed offline'), {
      timeout: 15_000,
    });
  });
});
