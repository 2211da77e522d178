import { join } from 'node:path';
import type { KeyChangedEvent } from '@scopesync/client';
import {
  type DocKey,
  deriveIdentity,
  importRecoveryPhrase,
  openEnvelope,
  openGrant,
  ready,
} from '@scopesync/crypto';
import { SqliteDocStore } from '@scopesync/store-sqlite';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  appendAcked as append,
  cleanUp,
  marker,
  openDevice,
  openReadyDevices,
  publishUnexplainedKeys,
  readDocText as read,
  rotateOntoNewDevice,
  startScannedRelay,
  docText as text,
} from './e2e-encryption-harness.ts';

/*
 * The follow-ups of an identity rotation (docs/encryption.md, "A lost device"), on a real relay
 * with real libsodium:
 * - the owner of a blob shared with the rotating user follows the signed rotation by itself (the
 *   next member list version names the new keys, the keys are sealed to them), never an
 *   unexplained key change;
 * - the rotating device finds every encrypted blob its user owns on the relay (GET /blobs/mine),
 *   also those it never opened, and rotates them out of the old seed's reach.
 */

afterEach(cleanUp);

/** Bounded: a follow happens in the background of the owner's client. */
const WAIT = { timeout: 20_000, interval: 100 };

describe('the owner of a blob shared with a rotating user', () => {
  it('follows the signed rotation by itself: the new device reads and writes, members accept the new key', async () => {
    await ready();
    const relay = await startScannedRelay();
    const [laptop, cy] = await openReadyDevices(relay.url, 'laptop', 'cy');
    const ada = laptop.client.userId as string;
    const dan = await openDevice(relay.url, { deviceName: 'dan' });
    await dan.client.encryption.ready();
    const [before, fromLaptop, fromTablet] = ['before', 'laptop', 'tablet'].map(marker) as [
      string,
      string,
      string,
    ];

    const board = cy.client.blobs.open('board', { encrypted: true });
    await board.whenSynced;
    await append(board, before);
    await cy.client.blobs.share('board', ada, 'read_write');
    await cy.client.blobs.share('board', dan.client.userId as string, 'read_only');
    const adaBoard = laptop.client.blobs.open('board', { encrypted: true });
    await adaBoard.whenSynced;
    await vi.waitFor(() => expect(text(adaBoard)).toBe(before), WAIT);
    const danBoard = dan.client.blobs.open('board', { encrypted: true });
    await danBoard.whenSynced;
    const listsBefore = (await relay.relay.store.listMemberLists('board')).length;

    const changes: KeyChangedEvent[] = [];
    cy.client.on('key-changed', (event) => changes.push(event));
    const rotation = await laptop.client.encryption.rotateIdentity();
    expect(rotation.failed).toEqual([]);
    expect(rotation.rekeyed).toContain('blob/board');

    // Ada writes on under her new key; the owner, reading it, follows her signed rotation.
    await append(adaBoard, fromLaptop);
    await vi.waitFor(() => expect(text(board)).toBe(before + fromLaptop), WAIT);
    expect(changes.map((e) => [e.userId, e.rotated])).toEqual([[ada, true]]);
    // One member list version more, signed by the owner, naming Ada's new keys at her level.
    const lists = await relay.relay.store.listMemberLists('board');
    expect(lists.length).toBe(listsBefore + 1);
    const adaNow = await laptop.client.encryption.publicKeys();
    const members = (await cy.client.encryption.docKeys('blob/board')).members?.members ?? [];
    expect(members.find((m) => m.userId === ada)).toMatchObject({
      level: 'read_write',
      signPublicKey: adaNow.signPublicKey,
      boxPublicKey: adaNow.boxPublicKey,
    });

    // Her new device (the new phrase only) opens the keys sealed to her new box key, and writes.
    const tablet = await openDevice(relay.url, {
      deviceName: 'tablet',
      recoveryPhrase: rotation.recoveryPhrase,
    });
    expect(await read(tablet, 'blob/board')).toBe(before + fromLaptop);
    const mine = tablet.client.blobs.open('board', { encrypted: true });
    await mine.whenSynced;
    await append(mine, fromTablet);
    await vi.waitFor(() => expect(text(board)).toBe(before + fromLaptop + fromTablet), WAIT);
    // Another member accepts her envelopes signed by the new key.
    await vi.waitFor(() => expect(text(danBoard)).toBe(before + fromLaptop + fromTablet), WAIT);
    await mine.release();
  });

  it('follows it when it opens the blob later: the rotated device published a head under the new key', async () => {
    await ready();
    const relay = await startScannedRelay();
    const [laptop, cy] = await openReadyDevices(relay.url, 'laptop', 'cy');
    const ada = laptop.client.userId as string;
    const before = marker('before');
    const board = cy.client.blobs.open('board', { encrypted: true });
    await board.whenSynced;
    await append(board, before);
    await cy.client.blobs.share('board', ada, 'read_only');
    await board.release();
    expect(await read(laptop, 'blob/board')).toBe(before);

    const { newDevice: tablet } = await rotateOntoNewDevice(laptop, relay.url);
    // The owner has not noticed yet: the key is sealed to Ada's old box key.
    await expect(tablet.client.encryption.docKeys('blob/board')).rejects.toMatchObject({
      kind: 'Unavailable',
    });

    // The owner opens the blob: catching up, it sees Ada's head signed by her new key and follows.
    const changes: KeyChangedEvent[] = [];
    cy.client.on('key-changed', (event) => changes.push(event));
    const again = cy.client.blobs.open('board', { encrypted: true });
    await again.whenSynced;
    await vi.waitFor(async () => expect(await read(tablet, 'blob/board')).toBe(before), WAIT);
    expect(changes.map((e) => [e.userId, e.rotated])).toEqual([[ada, true]]);
    const members = (await cy.client.encryption.docKeys('blob/board')).members?.members ?? [];
    expect(members.find((m) => m.userId === ada)?.level).toBe('read_only');
    await again.release();
  });

  it('does not follow an unexplained key change (no signed rotation): the app decides', async () => {
    await ready();
    const relay = await startScannedRelay();
    const [laptop, cy] = await openReadyDevices(relay.url, 'laptop', 'cy');
    const ada = laptop.client.userId as string;
    const board = cy.client.blobs.open('board', { encrypted: true });
    await board.whenSynced;
    await append(board, marker('before'));
    await cy.client.blobs.share('board', ada, 'read_write');
    const listsBefore = (await relay.relay.store.listMemberLists('board')).length;
    const grantsBefore = await relay.relay.store.listKeyGrants('board', ada);

    // The relay (an admin, or a relay lying) publishes other keys for Ada, with no rotation chain.
    await publishUnexplainedKeys(relay, ada);
    const changes: KeyChangedEvent[] = [];
    cy.client.on('key-changed', (event) => changes.push(event));
    await expect(cy.client.trust.keysOf(ada)).rejects.toMatchObject({ kind: 'KeyChanged' });
    expect(changes.map((e) => [e.userId, e.rotated])).toEqual([[ada, false]]);
    // A head under the unexplained key is not followed either (the owner's catch-up checks heads).
    await cy.client.encryption.afterSynced('blob/board');

    // Nothing was signed or sealed to the offered keys.
    await cy.client.blobs.listShares('board'); // a round trip after the listener could have run
    expect((await relay.relay.store.listMemberLists('board')).length).toBe(listsBefore);
    expect(await relay.relay.store.listKeyGrants('board', ada)).toEqual(grantsBefore);
    const members = (await cy.client.encryption.docKeys('blob/board')).members?.members ?? [];
    expect(members.find((m) => m.userId === ada)?.signPublicKey).toEqual(
      (await laptop.client.encryption.publicKeys()).signPublicKey,
    );
  });
});

describe('an identity rotation on a device that never opened an owned blob', () => {
  it('finds it on the relay (GET /blobs/mine) and rotates it: the old seed opens nothing written after', async () => {
    await ready();
    const relay = await startScannedRelay();
    const laptop = await openDevice(relay.url, { deviceName: 'laptop' });
    await laptop.client.encryption.ready();
    const ada = laptop.client.userId as string;
    const oldPhrase = await laptop.client.encryption.exportRecoveryPhrase();
    const [before, after] = ['vault-before', 'vault-after'].map(marker) as [string, string];
    const vault = laptop.client.blobs.open('vault', { encrypted: true });
    await vault.whenSynced;
    await append(vault, before);
    await vault.release();

    // The phone (same seed) never opened the vault: it holds no key record for it.
    const phone = await openDevice(relay.url, { deviceName: 'phone', recoveryPhrase: oldPhrase });
    await phone.client.encryption.ready();
    const rotation = await phone.client.encryption.rotateIdentity();
    expect(rotation.failed).toEqual([]);
    expect(rotation.rekeyed).toContain('blob/vault');

    // Written after the rotation, from the rotating device.
    const onPhone = phone.client.blobs.open('vault', { encrypted: true });
    await onPhone.whenSynced;
    expect(text(onPhone)).toBe(before);
    await append(onPhone, after);
    await onPhone.whenStored();

    // The new seed reads it all.
    const tablet = await openDevice(relay.url, {
      deviceName: 'tablet',
      recoveryPhrase: rotation.recoveryPhrase,
    });
    expect(await read(tablet, 'blob/vault')).toBe(before + after);

    // Every key the old seed reaches (the owner's grants sealed to its box key) opens no entry
    // the relay stores for the vault now, while the new seed opens each.
    const old = deriveIdentity(await importRecoveryPhrase(oldPhrase));
    const thiefKeys: DocKey[] = [];
    for (const g of await relay.relay.store.listKeyGrants('vault', ada)) {
      try {
        thiefKeys.push(
          openGrant({ grant: g.grant, sealedKey: g.sealedKey, recipient: old, isGrantorAllowed: () => true })
            .docKey,
        );
      } catch {}
    }
    expect(thiefKeys.length).toBeGreaterThanOrEqual(1); // what was written before stays theirs
    await relay.relay.hub.flush();
    const relayDocs = new SqliteDocStore({ path: join(relay.dataDir, 'docs.sqlite') });
    try {
      const entries = await relayDocs.load('blob/vault');
      expect(entries.length).toBeGreaterThan(0);
      const newKeys = await tablet.client.encryption.docKeys('blob/vault');
      for (const entry of entries) {
        await expect(newKeys.open(entry.data)).resolves.toBeInstanceOf(Uint8Array);
        expect(() =>
          openEnvelope(entry.data, {
            docName: 'blob/vault',
            keys: (id, epoch) => thiefKeys.find((k) => k.id === id && k.epoch === epoch),
            isAuthorAllowed: () => true,
          }),
        ).toThrow();
      }
    } finally {
      await relayDocs.close();
    }
  });
});
