import { isSyncError, type SyncError } from '@scopesync/core';
import { exportRecoveryPhrase, generateRootSeed, importRecoveryPhrase, ready } from '@scopesync/crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUp, openDevice, startScannedRelay } from './e2e-encryption-harness.ts';

/*
 * Attack 8 of issue 17, recovery and registration: a recovery phrase is an existing account,
 * never a new one, and a device that cannot prove its keys does not become a user without them.
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

/**
 * `phrase` with one word replaced so that the checksum still passes: the typo a user makes
 * about once in 200 single-word substitutions, which decodes to other keys without complaint.
 */
async function typoPassingChecksum(phrase: string): Promise<string> {
  await ready();
  // Candidate words: the BIP-39 list is not exported, so gather words from other phrases.
  const pool = new Set<string>();
  for (let i = 0; i < 120; i++)
    for (const w of (await exportRecoveryPhrase(generateRootSeed())).split(' ')) pool.add(w);
  const words = phrase.split(' ');
  for (let position = 0; position < words.length - 1; position++) {
    for (const candidate of pool) {
      if (candidate === words[position]) continue;
      const typo = words.map((w, i) => (i === position ? candidate : w)).join(' ');
      try {
        await importRecoveryPhrase(typo);
        return typo;
      } catch {
        // The checksum caught this one.
      }
    }
  }
  throw new Error('no checksum-passing typo found');
}

describe('recovery phrases and registration', () => {
  it('a recovery phrase with a typo that passes the checksum is refused, not a new empty account', async () => {
    const relay = await startScannedRelay();
    const laptop = await openDevice(relay.url, { deviceName: 'laptop' });
    const phrase = await laptop.client.encryption.exportRecoveryPhrase();
    const typo = await typoPassingChecksum(phrase);
    const users = await relay.relay.store.countUsers();

    const error = await rejection(openDevice(relay.url, { deviceName: 'phone', recoveryPhrase: typo }));
    expect(error.kind).toBe('NotFound');
    expect(error.message).toMatch(/recovery phrase/);
    expect(await relay.relay.store.countUsers()).toBe(users);

    // The right phrase still links the phone to the laptop's user.
    const phone = await openDevice(relay.url, { deviceName: 'phone', recoveryPhrase: phrase });
    expect(phone.client.userId).toBe(laptop.client.userId);
  });

  it('a device whose key proof fails does not register without keys', async () => {
    const relay = await startScannedRelay();
    const users = await relay.relay.store.countUsers();
    // A relay (or a proxy) that will not hand out challenges: the proof cannot be made.
    const noChallenges = (input: RequestInfo | URL, init?: RequestInit) =>
      String(input).endsWith('/keys/challenge')
        ? Promise.resolve(new Response(JSON.stringify({ error: 'NotFound', message: 'no' }), { status: 404 }))
        : fetch(input, init);
    const error = await rejection(openDevice(relay.url, { deviceName: 'tablet', fetch: noChallenges }));
    expect(error.kind).toBe('NotFound');
    expect(await relay.relay.store.countUsers()).toBe(users);
  });
});
