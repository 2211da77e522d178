import { join } from 'node:path';
import {
  deriveIdentity,
  exportRecoveryPhrase,
  generateRootSeed,
  type Identity,
  ready,
  sealEnvelope,
} from '@scopesync/crypto';
import { SqliteDocStore } from '@scopesync/store-sqlite';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as Y from 'yjs';
import {
  appendAcked as append,
  cleanUp,
  type Device,
  everythingStored,
  findMarker,
  marker,
  openDevice,
  rawSend,
  type ScannedRelay,
  startScannedRelay,
  docText as text,
} from './e2e-encryption-harness.ts';

/*
 * Encrypted blobs through the real relay (SQLite, libsodium, fake-indexeddb): the owner shares
 * the document key as sealed, signed grants; members read and write; a read_only sharee reads
 * but the relay refuses its envelopes; revoking rotates the key so the revoked user cannot read
 * what follows. Nothing written is ever found in clear on the relay or in any device's store.
 */

afterEach(cleanUp);

interface Member extends Device {
  readonly apiKey: string;
  readonly userId: string;
  /** The member's keys, known to the test because it made the root seed. */
  readonly identity: Identity;
}

async function member(relay: ScannedRelay, name: string): Promise<Member> {
  await ready();
  // Made by the relay runtime without keys: the client registers them (with a proof) on first
  // use. The test makes the seed, so that it can forge what a modified client could send.
  const { key, userId } = await relay.user(name);
  const seed = generateRootSeed();
  const device = await openDevice(relay.url, {
    apiKey: key,
    recoveryPhrase: await exportRecoveryPhrase(seed),
  });
  await device.client.encryption.ready();
  return { ...device, apiKey: key, userId, identity: deriveIdentity(seed) };
}

describe('encrypted blobs', () => {
  it('members read and write through sealed grants; a read_only sharee cannot write; nothing in clear', async () => {
    const relay = await startScannedRelay();
    const ada = await member(relay, 'ada');
    const bob = await member(relay, 'bob');
    const cy = await member(relay, 'cy');
    const fromAda = marker('ada');
    const fromBob = marker('bob');

    const a = ada.client.blobs.open('plans', { encrypted: true });
    await a.whenSynced;
    await append(a, fromAda);
    await ada.client.blobs.share('plans', bob.userId, 'read_write');
    await ada.client.blobs.share('plans', cy.userId, 'read_only');

    const b = bob.client.blobs.open('plans', { encrypted: true });
    await b.whenSynced;
    expect(text(b)).toBe(fromAda);
    await append(b, fromBob);
    await vi.waitFor(() => expect(text(a)).toBe(fromAda + fromBob));

    const c = cy.client.blobs.open('plans', { encrypted: true });
    await c.whenSynced;
    expect(text(c)).toBe(fromAda + fromBob);
    expect(c.access).toBe('read');
    await expect(c.transact((d) => d.getText('t').insert(0, 'no'))).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    // A modified client of the read_only sharee, sealing with the key it was granted: refused.
    const cyKeys = await cy.client.encryption.docKeys('blob/plans');
    const forged = await cyKeys.seal(Y.encodeStateAsUpdate(new Y.Doc()));
    expect(await rawSend(relay.wsUrl, cy.apiKey, 'blob/plans', forged)).toMatchObject({
      type: 'error',
      kind: 'Forbidden',
    });

    // Raw bytes too: sealed before upload, opened by a sharee.
    const rawSecret = marker('raw');
    await ada.client.blobs.put('scan.pdf', new TextEncoder().encode(rawSecret), { encrypted: true });
    await ada.client.blobs.share('scan.pdf', cy.userId, 'read_only');
    const raw = await cy.client.blobs.get('scan.pdf', { encrypted: true });
    expect(new TextDecoder().decode(raw.bytes)).toBe(rawSecret);

    for (const h of [a, b, c]) await h.whenStored();
    const devices = { ada, bob, cy };
    for (const d of Object.values(devices)) await d.client.close();
    const stored = await everythingStored(relay, devices);
    expect(findMarker(fromAda, stored)).toEqual([]);
    expect(findMarker(fromBob, stored)).toEqual([]);
    expect(findMarker(rawSecret, stored)).toEqual([]);
    // The scan does see what is stored in clear: a plaintext doc's text is found.
    const check = await member(relay, 'check');
    const plain = check.client.doc('PUBLIC_RW/_/scan-check');
    await plain.whenSynced;
    const visible = marker('visible');
    await append(plain, visible);
    await plain.whenStored();
    await check.client.close();
    const again = await everythingStored(relay, { check });
    expect(findMarker(visible, again).length).toBeGreaterThan(0);
  });

  it('revoking rotates the key: the remaining members read on, the revoked user cannot read what follows', async () => {
    const relay = await startScannedRelay();
    const ada = await member(relay, 'ada');
    const bob = await member(relay, 'bob');
    const cy = await member(relay, 'cy');
    const before = marker('before');
    const after = marker('after');
    const offline = marker('offline');

    const a = ada.client.blobs.open('board', { encrypted: true });
    await a.whenSynced;
    await append(a, before);
    await ada.client.blobs.share('board', bob.userId, 'read_write');
    await ada.client.blobs.share('board', cy.userId, 'read_write');
    const b = bob.client.blobs.open('board', { encrypted: true });
    const c = cy.client.blobs.open('board', { encrypted: true });
    await Promise.all([b.whenSynced, c.whenSynced]);
    expect(text(b)).toBe(before);
    const bobKeys = await bob.client.encryption.docKeys('blob/board');
    const bobClosed = new Promise((resolve) => b.on('closed', resolve));
    // Cy is offline during the rotation and keeps editing under the old key.
    cy.client.disconnect();
    await c.transact((d) => d.getText('t').insert(0, offline));

    await ada.client.blobs.revoke('board', bob.userId);
    await bobClosed;
    const rotated = await ada.client.encryption.docKeys('blob/board');
    expect(rotated.keyring.current().epoch).toBe(2);

    // Back online, the relay refuses Cy's old-key envelopes; her client fetches the new key
    // and seals the same edits again: nothing she wrote is lost.
    cy.client.connect();
    await vi.waitFor(() => expect(text(a)).toBe(offline + before));
    await c.whenAcked();
    const cyKeys = await cy.client.encryption.docKeys('blob/board');
    expect(cyKeys.keyring.current().epoch).toBe(2);
    // Cy writes after the rotation, under the new key.
    await append(c, after);
    await vi.waitFor(() => expect(text(a)).toBe(offline + before + after));

    // A member still holding the old key cannot write under it any more.
    const oldKey = cyKeys.keyring.keys().find((k) => k.epoch === 1);
    expect(oldKey).toBeDefined();
    const stale = sealEnvelope({
      docName: 'blob/board',
      key: oldKey!,
      author: { ...cy.identity, userId: cy.userId },
      plaintext: Y.encodeStateAsUpdate(new Y.Doc()),
    });
    expect(await rawSend(relay.wsUrl, cy.apiKey, 'blob/board', stale)).toMatchObject({
      type: 'error',
      kind: 'KeyRotated',
    });

    // Everything the relay now holds is under the new key: Bob's keys open none of it.
    await relay.relay.hub.flush();
    const relayDocs = new SqliteDocStore({ path: join(relay.dataDir, 'docs.sqlite') });
    try {
      const entries = await relayDocs.load('blob/board');
      expect(entries.length).toBeGreaterThan(0);
      for (const entry of entries) {
        await expect(bobKeys.open(entry.data)).rejects.toMatchObject({ kind: 'NotFound' });
      }
    } finally {
      await relayDocs.close();
    }
    // The revoked user is refused outright.
    await expect(
      rawSend(relay.wsUrl, bob.apiKey, 'blob/board', await bobKeys.seal(Y.encodeStateAsUpdate(new Y.Doc()))),
    ).rejects.toThrow(/no access/);

    await Promise.all([a.whenStored(), c.whenStored()]);
    const devices = { ada, bob, cy };
    for (const d of Object.values(devices)) await d.client.close();
    const stored = await everythingStored(relay, devices);
    for (const m of [before, after, offline]) expect(findMarker(m, stored)).toEqual([]);
  });
});
