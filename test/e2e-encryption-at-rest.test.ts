import type { DocHandle } from '@scopesync/client';
import { isSyncError, type SyncError } from '@scopesync/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanUp,
  findMarker,
  indexedDbContents,
  marker,
  openDevice,
  startScannedRelay,
} from './e2e-encryption-harness.ts';

/*
 * Attack 7 of issue 17, at rest: a thief with a copy of a device's IndexedDB files. The device
 * key that wraps the root seed is a non-extractable CryptoKey, but the browser serializes it
 * into the same files, so without a passphrase the copy is the account (first test: what the
 * docs now say). With a passphrase the seed is sealed under Argon2id, and the copy opens nothing.
 */

afterEach(cleanUp);

const text = (handle: DocHandle): string => handle.doc.getText('t').toString();

async function rejection(attempt: Promise<unknown>): Promise<SyncError> {
  try {
    await attempt;
  } catch (error) {
    if (isSyncError(error)) return error;
    throw error;
  }
  throw new Error('expected a SyncError');
}

/** A device writes `words` into its private doc `notes` and closes: what the thief copies. */
async function writeNotes(url: string, words: string, passphrase?: string) {
  const laptop = await openDevice(url, { deviceName: 'laptop', ...(passphrase ? { passphrase } : {}) });
  const userId = laptop.client.userId as string;
  const notes = laptop.client.doc(`USER_PRIVATE/${userId}/notes`);
  await notes.whenSynced;
  await notes.transact((d) => d.getText('t').insert(0, words));
  await notes.whenAcked();
  await laptop.client.close();
  return { userId, indexedDB: laptop.indexedDB };
}

describe('a copy of the IndexedDB files', () => {
  it('without a passphrase, is the account: the docs say so', async () => {
    const relay = await startScannedRelay();
    const secret = marker('no-passphrase');
    const { userId, indexedDB } = await writeNotes(relay.url, secret);
    // The "thief" opens a client over the copied files, knowing nothing else.
    const thief = await openDevice(relay.url, {}, indexedDB);
    expect(thief.client.userId).toBe(userId);
    const notes = thief.client.doc(`USER_PRIVATE/${userId}/notes`);
    await notes.whenSynced;
    expect(text(notes)).toBe(secret);
  });

  it('with a passphrase, opens nothing: not the seed, not the docs, not the recovery phrase', async () => {
    const relay = await startScannedRelay();
    const secret = marker('passphrase');
    const { userId, indexedDB } = await writeNotes(relay.url, secret, 'tr0ub4dor&3 horse');
    expect(findMarker(secret, new Map([['idb', await indexedDbContents(indexedDB)]]))).toEqual([]);

    const thief = await openDevice(relay.url, {}, indexedDB);
    expect((await rejection(thief.client.encryption.exportRecoveryPhrase())).kind).toBe('Unauthorized');
    const notes = thief.client.doc(`USER_PRIVATE/${userId}/notes`);
    expect(((await notes.whenLoaded.catch((error: unknown) => error)) as SyncError).kind).toBe(
      'Unauthorized',
    );
    expect(text(notes)).toBe('');
    await thief.client.close();

    const guessing = await openDevice(relay.url, { passphrase: 'tr0ub4dor&3' }, indexedDB);
    expect((await rejection(guessing.client.encryption.exportRecoveryPhrase())).kind).toBe('Forbidden');
    await guessing.client.close();

    // The owner, with the passphrase, reads on.
    const owner = await openDevice(relay.url, { passphrase: 'tr0ub4dor&3 horse' }, indexedDB);
    const mine = owner.client.doc(`USER_PRIVATE/${userId}/notes`);
    await mine.whenSynced;
    expect(text(mine)).toBe(secret);
    expect((await owner.client.encryption.exportRecoveryPhrase()).split(' ')).toHaveLength(24);
  });

  it('a device that kept its seed without a passphrase moves it under one when given', async () => {
    const relay = await startScannedRelay();
    const secret = marker('upgrade');
    const { userId, indexedDB } = await writeNotes(relay.url, secret);
    const upgraded = await openDevice(relay.url, { passphrase: 'later' }, indexedDB);
    const notes = upgraded.client.doc(`USER_PRIVATE/${userId}/notes`);
    await notes.whenSynced;
    expect(text(notes)).toBe(secret);
    await upgraded.client.close();
    const thief = await openDevice(relay.url, {}, indexedDB);
    expect((await rejection(thief.client.encryption.exportRecoveryPhrase())).kind).toBe('Unauthorized');
  });
});
