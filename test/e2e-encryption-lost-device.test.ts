import { join } from 'node:path';
import type { KeyChangedEvent } from '@scopesync/client';
import { isSyncError, type SyncError } from '@scopesync/core';
import {
  type DocKey,
  deriveIdentity,
  importRecoveryPhrase,
  openEnvelope,
  openGrant,
  ready,
  unwrapDocKey,
} from '@scopesync/crypto';
import { SqliteDocStore } from '@scopesync/store-sqlite';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  appendAcked as append,
  cleanUp,
  everythingStored,
  findMarker,
  marker,
  openDevice,
  openReadyDevices,
  readDocText as read,
  rotateOntoNewDevice,
  startScannedRelay,
  docText as text,
} from './e2e-encryption-harness.ts';

/*
 * Attack 6 of issue 17, a lost device: every device of a user held the same seed, so whoever
 * kept a lost phone (or read its recovery phrase) could relink and unwrap every document key.
 * After `client.encryption.rotateIdentity()` the user lives on under a new seed: the thief's old
 * seed links nothing, registers nothing and opens nothing written afterwards — not even given
 * every byte the relay stores — while the user's new device reads everything and a sharee who
 * pinned the old key reads on, told it was a signed rotation.
 */

afterEach(cleanUp);

async function rejection(attempt: Promise<unknown>): Promise<SyncError> {
  try {
    await attempt;
  } catch (error) {
    if (isSyncError(error)) return error;
    throw error;
  }
  throw new Error('expected a SyncError');
}

describe('a lost device (identity rotation)', () => {
  it('moves the user to a new seed: the old one relinks nothing and opens nothing written after; the new device reads all; a sharee reads on', async () => {
    await ready();
    const relay = await startScannedRelay();
    const laptop = await openDevice(relay.url, { deviceName: 'laptop' });
    await laptop.client.encryption.ready();
    const ada = laptop.client.userId as string;
    const oldPhrase = await laptop.client.encryption.exportRecoveryPhrase();
    // The phone that will be lost: a second device of the same identity.
    const phone = await openDevice(relay.url, { deviceName: 'phone', recoveryPhrase: oldPhrase });
    expect(phone.client.userId).toBe(ada);
    const bob = await openDevice(relay.url, { deviceName: 'bob' });
    await bob.client.encryption.ready();
    const keyChanges: KeyChangedEvent[] = [];
    bob.client.on('key-changed', (event) => keyChanges.push(event));

    const diaryName = `USER_PRIVATE/${ada}/diary`;
    const [diaryBefore, diaryAfter, plansBefore, plansAfter, fromBob] = [
      'diary-before',
      'diary-after',
      'plans-before',
      'plans-after',
      'bob',
    ].map(marker) as [string, string, string, string, string];
    const diary = laptop.client.doc(diaryName);
    await diary.whenSynced;
    await append(diary, diaryBefore);
    const plans = laptop.client.blobs.open('plans', { encrypted: true });
    await plans.whenSynced;
    await append(plans, plansBefore);
    await laptop.client.blobs.share('plans', bob.client.userId as string, 'read_write');
    const bobPlans = bob.client.blobs.open('plans', { encrypted: true });
    await bobPlans.whenSynced;
    await vi.waitFor(() => expect(text(bobPlans)).toBe(plansBefore));

    const rotation = await laptop.client.encryption.rotateIdentity();
    expect(rotation.failed).toEqual([]);
    expect([...rotation.rekeyed].sort()).toEqual([diaryName, 'blob/plans'].sort());
    expect(rotation.recoveryPhrase).not.toBe(oldPhrase);
    expect(await laptop.client.encryption.exportRecoveryPhrase()).toBe(rotation.recoveryPhrase);

    // The lost phone's API key went with the identity it held.
    const [phoneKey] = [...phone.apiKeys];
    expect((await relay.api('GET', '/keys/validate', { key: phoneKey })).status).toBe(401);
    // The thief with the old phrase cannot link a device again.
    const relink = await rejection(openDevice(relay.url, { deviceName: 'thief', recoveryPhrase: oldPhrase }));
    expect(relink.kind).toBe('NotFound');

    // The user writes on, in both documents.
    await append(diary, diaryAfter);
    await append(plans, plansAfter);

    // A new device with the new phrase reads everything, before and after the rotation.
    const tablet = await openDevice(relay.url, {
      deviceName: 'tablet',
      recoveryPhrase: rotation.recoveryPhrase,
    });
    expect(tablet.client.userId).toBe(ada);
    expect(await read(tablet, diaryName)).toBe(diaryBefore + diaryAfter);
    expect(await read(tablet, 'blob/plans')).toBe(plansBefore + plansAfter);

    // The sharee reads on and writes on; it was told the key changed by a signed rotation.
    await vi.waitFor(() => expect(text(bobPlans)).toBe(plansBefore + plansAfter));
    expect(keyChanges.map((e) => [e.userId, e.rotated])).toEqual([[ada, true]]);
    await append(bobPlans, fromBob);
    await vi.waitFor(() => expect(text(plans)).toBe(plansBefore + plansAfter + fromBob));
    expect(await read(tablet, 'blob/plans')).toBe(plansBefore + plansAfter + fromBob);

    // The thief, given every byte the relay stores: every key the old seed reaches (wrapped
    // private doc keys, blob grants sealed to the old box key) opens no stored entry.
    const old = deriveIdentity(await importRecoveryPhrase(oldPhrase));
    const thiefKeys: DocKey[] = [];
    for (const w of await relay.relay.store.listWrappedKeys(diaryName)) {
      try {
        thiefKeys.push(unwrapDocKey(old.kek, diaryName, w.wrapped));
      } catch {}
    }
    for (const g of await relay.relay.store.listKeyGrants('plans', ada)) {
      try {
        thiefKeys.push(
          openGrant({ grant: g.grant, sealedKey: g.sealedKey, recipient: old, isGrantorAllowed: () => true })
            .docKey,
        );
      } catch {}
    }
    expect(thiefKeys.length).toBeGreaterThanOrEqual(2); // what was written before stays theirs
    for (const h of [diary, plans, bobPlans]) await h.whenStored();
    await relay.relay.hub.flush();
    const relayDocs = new SqliteDocStore({ path: join(relay.dataDir, 'docs.sqlite') });
    try {
      for (const name of [diaryName, 'blob/plans']) {
        const entries = await relayDocs.load(name);
        expect(entries.length).toBeGreaterThan(0);
        const newKeys = await tablet.client.encryption.docKeys(name);
        for (const entry of entries) {
          // The user's new seed opens it (so the thief's failure below is the keys', nothing else).
          await expect(newKeys.open(entry.data)).resolves.toBeInstanceOf(Uint8Array);
          expect(() =>
            openEnvelope(entry.data, {
              docName: name,
              keys: (id, epoch) => thiefKeys.find((k) => k.id === id && k.epoch === epoch),
              isAuthorAllowed: () => true,
            }),
          ).toThrow();
        }
      }
    } finally {
      await relayDocs.close();
    }
    // And nothing of it is stored in clear anywhere.
    const devices = { laptop, phone, bob, tablet };
    for (const d of Object.values(devices)) await d.client.close();
    const stored = await everythingStored(relay, devices);
    for (const m of [diaryBefore, diaryAfter, plansBefore, plansAfter, fromBob]) {
      expect(findMarker(m, stored)).toEqual([]);
    }
  });

  it('a blob shared with the rotated user: its owner follows the signed rotation and shares again to the new keys', async () => {
    await ready();
    const relay = await startScannedRelay();
    const [laptop, cy] = await openReadyDevices(relay.url, 'laptop', 'cy');
    const ada = laptop.client.userId as string;
    const before = marker('before');
    const fromAda = marker('ada');
    const board = cy.client.blobs.open('board', { encrypted: true });
    await board.whenSynced;
    await append(board, before);
    await cy.client.blobs.share('board', ada, 'read_write');
    expect(await read(laptop, 'blob/board')).toBe(before);

    const { newDevice: tablet } = await rotateOntoNewDevice(laptop, relay.url);
    // The owner sealed the key to Ada's old box key and has not learned of the rotation (it opened
    // nothing since and Ada wrote nothing): her new device cannot open it yet.
    await expect(tablet.client.encryption.docKeys('blob/board')).rejects.toMatchObject({
      kind: 'Unavailable',
    });

    // Sharing again follows Ada's signed rotation (no KeyChanged to accept) and seals to her new keys.
    const changes: KeyChangedEvent[] = [];
    cy.client.on('key-changed', (event) => changes.push(event));
    await cy.client.blobs.share('board', ada, 'read_write');
    expect(changes.map((e) => [e.userId, e.rotated])).toEqual([[ada, true]]);
    expect(await read(tablet, 'blob/board')).toBe(before);
    // And her envelopes, signed by the new key, are accepted by the owner.
    const mine = tablet.client.blobs.open('board', { encrypted: true });
    await mine.whenSynced;
    await append(mine, fromAda);
    await vi.waitFor(() => expect(text(board)).toBe(before + fromAda));
    await mine.release();
  });

  it('a refused rotation keeps the old identity; one whose answer was lost completes', async () => {
    await ready();
    const relay = await startScannedRelay();
    // The relay's answer to the rotation: delivered, refused before it arrives, or lost after it.
    let rotationAnswer: 'deliver' | 'refuse' | 'lose' = 'deliver';
    const unavailable = () =>
      new Response(JSON.stringify({ error: 'Unavailable', message: 'gateway' }), {
        status: 503,
        headers: { 'content-type': 'application/json' },
      });
    const laptop = await openDevice(relay.url, {
      deviceName: 'laptop',
      fetch: async (input, init) => {
        const isRotation = init?.method === 'PUT' && /\/users\/[^/]+\/keys$/.test(String(input));
        if (isRotation && rotationAnswer === 'refuse') return unavailable();
        const answer = await fetch(input, init);
        return isRotation && rotationAnswer === 'lose' ? unavailable() : answer;
      },
    });
    await laptop.client.encryption.ready();
    const ada = laptop.client.userId as string;
    const oldPhrase = await laptop.client.encryption.exportRecoveryPhrase();
    const diaryName = `USER_PRIVATE/${ada}/diary`;
    const before = marker('before');
    const diary = laptop.client.doc(diaryName);
    await diary.whenSynced;
    await append(diary, before);

    rotationAnswer = 'refuse';
    expect((await rejection(laptop.client.encryption.rotateIdentity())).kind).toBe('Unavailable');
    // Nothing changed: the device keeps the old seed, the relay the old keys, and it writes on.
    expect(await laptop.client.encryption.exportRecoveryPhrase()).toBe(oldPhrase);
    await append(diary, 'x');

    // A blob made but never written: the relay does not have it, the rotation must not wait for it.
    const empty = laptop.client.blobs.create({ encrypted: true });
    await laptop.client.encryption.docKeys(`blob/${empty.id}`);

    rotationAnswer = 'lose';
    const rotation = await laptop.client.encryption.rotateIdentity();
    expect(rotation.failed).toEqual([]);
    expect([...rotation.rekeyed].sort()).toEqual([diaryName, `blob/${empty.id}`].sort());
    // Written now, it starts under keys of the new identity: the new device reads it.
    await append(empty.handle, 'late');
    expect(await laptop.client.encryption.exportRecoveryPhrase()).toBe(rotation.recoveryPhrase);
    const tablet = await openDevice(relay.url, {
      deviceName: 'tablet',
      recoveryPhrase: rotation.recoveryPhrase,
    });
    expect(await read(tablet, diaryName)).toBe(`${before}x`);
    expect(await read(tablet, `blob/${empty.id}`)).toBe('late');
  });

  it('two rotations in a row: a sharee follows both links at once, the newest phrase reads everything', async () => {
    await ready();
    const relay = await startScannedRelay();
    const laptop = await openDevice(relay.url, { deviceName: 'laptop' });
    await laptop.client.encryption.ready();
    const ada = laptop.client.userId as string;
    const bob = await openDevice(relay.url, { deviceName: 'bob' });
    await bob.client.encryption.ready();
    const changes: KeyChangedEvent[] = [];
    bob.client.on('key-changed', (event) => changes.push(event));
    const [first, second, third] = ['first', 'second', 'third'].map(marker) as [string, string, string];
    const notes = laptop.client.blobs.open('notes', { encrypted: true });
    await notes.whenSynced;
    await append(notes, first);
    await laptop.client.blobs.share('notes', bob.client.userId as string, 'read_only');
    expect(await read(bob, 'blob/notes')).toBe(first);

    expect((await laptop.client.encryption.rotateIdentity()).failed).toEqual([]);
    await append(notes, second);
    const last = await laptop.client.encryption.rotateIdentity();
    expect(last.failed).toEqual([]);
    await append(notes, third);

    expect(await read(bob, 'blob/notes')).toBe(first + second + third);
    expect(changes.map((e) => [e.userId, e.rotated])).toEqual([[ada, true]]);
    const tablet = await openDevice(relay.url, { deviceName: 'tablet', recoveryPhrase: last.recoveryPhrase });
    expect(await read(tablet, 'blob/notes')).toBe(first + second + third);
  });
});
