import { MemoryKeyValueStore } from '@scopesync/core';
import {
  countersignIdentityRotation,
  deriveIdentity,
  generateRootSeed,
  ready,
  signIdentityRotation,
} from '@scopesync/crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { KeyApi, PublicKeys, RotationStatement } from './key-api.ts';
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
    const api = {
      userKeys: async () => published,
      userKeysAndRotations: async () => ({ keys: published, rotations: [] }),
    } as unknown as KeyApi;
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

  it('follows a signed rotation chain from the pinned key (rotated: true), and nothing less', async () => {
    const me = deriveIdentity(generateRootSeed());
    const [k1, k2, k3, eve] = [0, 1, 2, 3].map(() => deriveIdentity(generateRootSeed())) as [
      ReturnType<typeof deriveIdentity>,
      ReturnType<typeof deriveIdentity>,
      ReturnType<typeof deriveIdentity>,
      ReturnType<typeof deriveIdentity>,
    ];
    const BOB = 'user_00000000000000b0';
    const rotate = (from: typeof k1, to: typeof k1, countersigner: typeof k1 = to): RotationStatement => {
      const statement = { relayId: 'relay-a', userId: BOB, challenge: `c-${Math.random()}` };
      return {
        ...statement,
        oldSignPk: from.signPublicKey,
        newSignPk: to.signPublicKey,
        newBoxPk: to.boxPublicKey,
        signature: signIdentityRotation(statement, from, to),
        countersignature: countersignIdentityRotation(statement, from, {
          ...to,
          signSecretKey: countersigner.signSecretKey,
        }),
      };
    };
    let published = keysOf(k1);
    let rotations: RotationStatement[] = [];
    const api = { userKeysAndRotations: async () => ({ keys: published, rotations }) } as unknown as KeyApi;
    const trust = new Trust({
      kv: new MemoryKeyValueStore(),
      api,
      self: async () => ({ userId: 'user_000000000000000a', keys: keysOf(me) }),
    });
    const events: [string, boolean][] = [];
    trust.on('key-changed', (e) => events.push([e.userId, e.rotated]));
    await trust.keysOf(BOB);
    // Two rotations in a row, each signed by the key it retires and countersigned by the next.
    published = keysOf(k3);
    rotations = [rotate(k1, k2), rotate(k2, k3)];
    expect(await trust.keysOf(BOB)).toEqual(keysOf(k3));
    expect(events).toEqual([[BOB, true]]);
    expect(await trust.keyHistory(BOB)).toEqual([k1.signPublicKey, k2.signPublicKey, k3.signPublicKey]);
    // A relay that swaps in eve's keys with a statement eve did not countersign, or one not signed
    // by the pinned key: an unexplained change, refused until accepted.
    published = keysOf(eve);
    rotations = [rotate(k1, k2), rotate(k2, k3), rotate(k3, eve, k1)];
    await expect(trust.keysOf(BOB)).rejects.toMatchObject({ kind: 'KeyChanged' });
    rotations = [rotate(k1, k2), rotate(k2, k3), rotate(eve, eve)];
    await expect(trust.keysOf(BOB)).rejects.toMatchObject({ kind: 'KeyChanged' });
    expect(events).toEqual([
      [BOB, true],
      [BOB, false],
      [BOB, false],
    ]);
  });
});
