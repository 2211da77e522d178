import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClientOptions, createClient, indexedDbClientStore, type SyncClient } from '@scopesync/client';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * Writes to documents the app no longer holds open (docs/offline.md, *Writes to documents
 * nobody holds open*), against a real relay that goes down and comes back on its data, with
 * the built-in end-to-end encryption: `userData.set` of a private value releases its document
 * at once, so before the fix its edit stayed on the device until the app opened it again.
 */

const dirs: string[] = [];
let relays: TestRelay[] = [];
let clients: SyncClient[] = [];
afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const r of relays) await r.close();
  relays = [];
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function relayOn(dataDir: string, port = 0): Promise<TestRelay> {
  const relay = await startTestRelay({ rateLimit: false, dataDir, port });
  relays.push(relay);
  return relay;
}

async function launch(url: string, options: Partial<ClientOptions>): Promise<SyncClient> {
  const indexedDB = new IDBFactory();
  const c = await createClient({
    url,
    WebSocket,
    store: indexedDbClientStore({ name: 'scopesync', indexedDB, IDBKeyRange }),
    backoff: { initialMs: 20, maxMs: 100 },
    ...options,
  });
  clients.push(c);
  return c;
}

describe('writes to documents nobody holds open', () => {
  it('reach the owner’s other device once the relay is back, though the app never opens them again', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'scopesync-unsent-relay-'));
    dirs.push(dataDir);
    const first = await relayOn(dataDir);
    const port = Number(new URL(first.url).port);
    const app = await launch(first.url, { deviceName: 'laptop' });
    const me = app.userId as string;
    await vi.waitFor(() => expect(app.status).toBe('online'), { timeout: 10_000 });
    const phrase = await app.encryption.exportRecoveryPhrase();

    await first.close();
    relays = [];
    await vi.waitFor(() => expect(app.status).not.toBe('online'));
    await app.userData.set('USER_PRIVATE', me, 'diary', { text: 'written while the relay was down' });
    const notes = app.doc(`USER_PUBLIC/${me}/notes`);
    await notes.transact((d) => d.getText('t').insert(0, 'closed while the relay was down'));
    await notes.release();

    const relay = await relayOn(dataDir, port);
    const phone = await launch(relay.url, { recoveryPhrase: phrase, deviceName: 'phone' });
    expect(phone.userId).toBe(me);
    await vi.waitFor(
      async () =>
        expect(await phone.userData.get('USER_PRIVATE', me, 'diary')).toEqual({
          text: 'written while the relay was down',
        }),
      { timeout: 15_000 },
    );
    const copy = phone.doc(`USER_PUBLIC/${me}/notes`);
    await vi.waitFor(() => expect(copy.doc.getText('t').toString()).toBe('closed while the relay was down'), {
      timeout: 15_000,
    });
  });
});
