import { MemoryKeyValueStore } from '@scopesync/core';
import { deriveIdentity, generateRootSeed, ready } from '@scopesync/crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { KeyApi, PublicKeys } from './key-api.ts';
import { Trust } from './trust.ts';

beforeAll(() => ready());

const keysOf = (identity: ReturnType<typeof deriveIdentity>): PublicKeys => ({
  signPublicKey: identity.signPublicKey,
  boxPublicKey: identity.boxPublicKey,
});

describe('Trust', () => {
  it('pins on first use, raises key-changed and KeyChanged on a swap until accepted', async () => {
    const me = deriveIdentity(generateRootSeed());
    const bob = deriveIdentity(generateRootSeed());
    const eve = deriveIdentity(generateRootSeed());
    let published = keysOf(bob);
    const api = { userKeys: async () => published } as unknown as KeyApi;
    const kv = new MemoryKeyValueStore();
    const trust = new Trust({
      kv,
      api,
      self: async () => ({ userId: 'user_000000000000000a', keys: keysOf(me) }),
    });
    const events: string[] = [];
    trust.on('key-changed', (e) => events.push(e.userId));
    expect(await trust.keysOf('user_00000000000000b0')).toEqual(keysOf(bob));
    const number = await trust.safetyNumber('user_00000000000000b0');
    published = keysOf(eve);
    await expect(trust.keysOf('user_00000000000000b0')).rejects.toMatchObject({ kind: 'KeyChanged' });
    await expect(trust.safetyNumber('user_00000000000000b0')).rejects.toMatchObject({ kind: 'KeyChanged' });
    expect(events).toEqual(['user_00000000000000b0', 'user_00000000000000b0']);
    // A fresh Trust on the same store remembers the pin.
    const again = new Trust({
      kv,
      api,
      self: async () => ({ userId: 'user_000000000000000a', keys: keysOf(me) }),
    });
    await expect(again.keysOf('user_00000000000000b0')).rejects.toMatchObject({ kind: 'KeyChanged' });
    expect(await again.accept('user_00000000000000b0')).toEqual(keysOf(eve));
    expect(await again.keysOf('user_00000000000000b0')).toEqual(keysOf(eve));
    expect(await again.safetyNumber('user_00000000000000b0')).not.toBe(number);
  });
});
