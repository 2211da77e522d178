import { isSyncError, type SyncError } from '@scopesync/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateRootSeed } from './identity.ts';
import {
  isPassphraseWrappedSeed,
  unwrapSeedWithPassphrase,
  wrapSeedWithPassphrase,
} from './passphrase-seed.ts';
import { ready } from './sodium.ts';

async function rejection(attempt: Promise<unknown>): Promise<SyncError> {
  try {
    await attempt;
  } catch (error) {
    if (isSyncError(error)) return error;
    throw error;
  }
  throw new Error('expected a SyncError');
}

describe('the root seed under a passphrase', () => {
  beforeAll(ready);

  it('opens with the passphrase only, and holds no byte run of the seed', async () => {
    const seed = generateRootSeed();
    const wrapped = await wrapSeedWithPassphrase(seed, 'correct horse battery staple');
    expect(isPassphraseWrappedSeed(wrapped)).toBe(true);
    const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    expect(hex(wrapped).includes(hex(seed.subarray(0, 8)))).toBe(false);
    expect(await unwrapSeedWithPassphrase(wrapped, 'correct horse battery staple')).toEqual(seed);
    expect((await rejection(unwrapSeedWithPassphrase(wrapped, 'correct horse battery stapler'))).kind).toBe(
      'Forbidden',
    );
  });

  it('refuses edited parameters: cheaper ones do not open, absurd ones are not even tried', async () => {
    const wrapped = await wrapSeedWithPassphrase(generateRootSeed(), 'pass');
    const cheaper = wrapped.slice();
    cheaper[5] = 1; // opslimit 1: bound as additional data, so the seal no longer verifies
    expect((await rejection(unwrapSeedWithPassphrase(cheaper, 'pass'))).kind).toBe('Forbidden');
    const huge = wrapped.slice();
    huge[6] = 0xff; // a memlimit of terabytes would stall the device
    expect((await rejection(unwrapSeedWithPassphrase(huge, 'pass'))).kind).toBe('BadRequest');
    expect((await rejection(unwrapSeedWithPassphrase(wrapped.subarray(1), 'pass'))).kind).toBe('BadRequest');
    expect((await rejection(wrapSeedWithPassphrase(generateRootSeed(), ''))).kind).toBe('BadRequest');
  });
});
