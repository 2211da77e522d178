import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type DocCipherProvider, memoryClientStore, type SyncClient } from '@scopesync/client';
import {
  createDocCipher,
  deriveIdentity,
  generateRootSeed,
  MemoryDocKeyring,
  ready,
} from '@scopesync/crypto';
import { createRelay, type Relay } from '@scopesync/relay';
import { SqliteDocStore } from '@scopesync/store-sqlite';
import { afterEach, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';

/*
 * @scopesync/crypto's DocCipher plugged into the client's encryption seam: a USER_PRIVATE doc
 * syncs between two devices of one user through the real relay, which stores only envelopes.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

it('syncs a USER_PRIVATE doc with the real cipher; the relay holds only envelopes', async () => {
  await ready();
  const dir = mkdtempSync(join(tmpdir(), 'scopesync-crypto-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const relay: Relay = createRelay({ dataDir: dir, port: 0, rateLimit: false, log: () => undefined });
  cleanups.push(() => relay.close());
  const { url } = await relay.listen();
  // The relay verifies every envelope against the author's registered signing key, so the
  // user is created with the identity's public keys (the runtime needs no proof of possession).
  const identity = deriveIdentity(generateRootSeed());
  const created = await relay.runtime.createUser({
    deviceName: 'me',
    signPk: Buffer.from(identity.signPublicKey).toString('base64url'),
    boxPk: Buffer.from(identity.boxPublicKey).toString('base64url'),
  });
  const registered = { key: created.key, user_id: created.userId };

  // Both devices hold the same identity and share the doc key (in the product it is wrapped
  // under the KEK and stored on the relay; here one keyring stands for that).
  const keyrings = new Map<string, MemoryDocKeyring>();
  const cipherFor: DocCipherProvider = (docName) => {
    let keyring = keyrings.get(docName);
    if (!keyring) {
      keyring = MemoryDocKeyring.create();
      keyrings.set(docName, keyring);
    }
    return createDocCipher({ identity, docName, keyring, userId: registered.user_id });
  };
  const open = async (): Promise<SyncClient> => {
    const c = await createClient({
      url,
      apiKey: registered.key,
      WebSocket,
      store: memoryClientStore(),
      cipherFor,
    });
    cleanups.push(() => c.close());
    return c;
  };
  const phone = await open();
  const laptop = await open();
  const name = `USER_PRIVATE/${registered.user_id}/diary`;

  const dp = phone.doc(name);
  await dp.whenSynced;
  await dp.transact((d) => d.getText('t').insert(0, 'the secret recipe'));
  await dp.whenAcked();
  const dl = laptop.doc(name);
  await dl.whenSynced;
  expect(dl.doc.getText('t').toString()).toBe('the secret recipe');
  await dl.transact((d) => d.getText('t').insert(0, '# '));
  await vi.waitFor(() => expect(dp.doc.getText('t').toString()).toBe('# the secret recipe'));
  await dl.whenAcked();

  expect(await laptop.userData.list('USER_PRIVATE', registered.user_id)).toContain('diary');
  const relayDocs = new SqliteDocStore({ path: join(dir, 'docs.sqlite') });
  cleanups.push(() => relayDocs.close());
  const stored = await relayDocs.load(name);
  expect(stored.length).toBeGreaterThan(0);
  for (const entry of stored) expect(Buffer.from(entry.data).includes('secret recipe')).toBe(false);
});
