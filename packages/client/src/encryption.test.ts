import { MemoryKeyValueStore } from '@scopesync/core';
import { deriveIdentity, exportRecoveryPhrase, generateRootSeed, ready } from '@scopesync/crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { Encryption } from './encryption.ts';
import type { KeyApi } from './key-api.ts';
import type { SeedStore } from './seed-store.ts';
import type { Trust } from './trust.ts';

/** A seed store that hands out buffers the test keeps: whatever the client leaves in them stays visible. */
function watchedSeeds(seed: Uint8Array) {
  const handedOut: Uint8Array[] = [];
  const seeds: SeedStore = {
    location: 'store',
    async load() {
      const copy = seed.slice();
      handedOut.push(copy);
      return copy;
    },
    async save() {
      throw new Error('not expected: the seed exists');
    },
  };
  return { seeds, handedOut };
}

describe('Encryption in memory', () => {
  beforeAll(ready);

  it('keeps the derived keys, not the root seed: every copy of the seed it read is zeroed', async () => {
    const seed = generateRootSeed();
    const { seeds, handedOut } = watchedSeeds(seed);
    const encryption = new Encryption({
      kv: new MemoryKeyValueStore(),
      api: {} as KeyApi,
      seeds,
      // Not reached: this test never lists devices.
      deviceSeeds: seeds,
      recoveryPhrase: undefined,
      userId: () => undefined,
      usesApiKey: () => false,
      // Only listened to (for members' rotations): this test never opens another user's document.
      trust: { on: () => () => undefined } as unknown as Trust,
    });
    const keys = await encryption.publicKeys();
    expect(keys.signPublicKey).toEqual(deriveIdentity(seed).signPublicKey);
    // The recovery phrase reads the seed again from storage, and zeroes that copy too.
    expect(await encryption.exportRecoveryPhrase()).toBe(await exportRecoveryPhrase(seed));
    expect(handedOut).toHaveLength(2);
    for (const copy of handedOut) expect(copy.every((byte) => byte === 0)).toBe(true);
  });
});
