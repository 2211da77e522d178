import { isSyncError } from '@scopesync/core';
import { beforeAll, describe, expect, test } from 'vitest';
import { deriveIdentity, generateRootSeed } from './identity.ts';
import { exportRecoveryPhrase, importRecoveryPhrase } from './recovery-phrase.ts';
import { ready, sodium } from './sodium.ts';

const hex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

beforeAll(ready);

describe('deriveIdentity', () => {
  test('a second device that enters the recovery phrase gets the same identity', async () => {
    const seed = generateRootSeed();
    const first = deriveIdentity(seed);
    const phrase = await exportRecoveryPhrase(seed);
    const second = deriveIdentity(await importRecoveryPhrase(phrase));
    expect(second).toEqual(first);
  });

  test('pins the derivation: the same seed gives these keys in every release', () => {
    // If this fails, every user's recovery phrase now opens a different identity.
    const id = deriveIdentity(Uint8Array.from({ length: 32 }, (_, i) => i));
    expect({
      sign: hex(id.signPublicKey),
      box: hex(id.boxPublicKey),
      kek: hex(sodium().crypto_generichash(16, id.kek, null)),
    }).toMatchInlineSnapshot(`
      {
        "box": "85f6dadcb7cce842fb27889dc33754e81bc038c8bf49a31a5f1716ea9bf8ae2a",
        "kek": "58f0d23ae025b7c07f5ed5ae03bfbc4c",
        "sign": "458eebfa62867eb60e1fd7e0047043e85d53062e18526598e523ea34bd1c5816",
      }
    `);
  });

  test('gives working, distinct key pairs and a KEK unrelated to the seed', () => {
    const seed = generateRootSeed();
    const id = deriveIdentity(seed);
    const s = sodium();
    expect(id.signPublicKey).toHaveLength(32);
    expect(id.signSecretKey).toHaveLength(64);
    expect(id.boxPublicKey).toHaveLength(32);
    expect(id.boxSecretKey).toHaveLength(32);
    expect(id.kek).toHaveLength(32);
    const message = new TextEncoder().encode('hello');
    expect(
      s.crypto_sign_verify_detached(
        s.crypto_sign_detached(message, id.signSecretKey),
        message,
        id.signPublicKey,
      ),
    ).toBe(true);
    expect(s.crypto_scalarmult_base(id.boxSecretKey)).toEqual(id.boxPublicKey);
    const all = [
      seed,
      id.signPublicKey,
      id.boxPublicKey,
      id.boxSecretKey,
      id.kek,
      id.signSecretKey.subarray(0, 32),
    ];
    expect(new Set(all.map(hex)).size).toBe(all.length);
    expect(deriveIdentity(generateRootSeed()).signPublicKey).not.toEqual(id.signPublicKey);
  });

  test('a seed of the wrong size is a BadRequest', () => {
    for (const bad of [new Uint8Array(31), new Uint8Array(33), 'seed' as unknown as Uint8Array]) {
      try {
        deriveIdentity(bad);
        expect.unreachable('deriveIdentity accepted a bad seed');
      } catch (error) {
        expect(isSyncError(error, 'BadRequest')).toBe(true);
      }
    }
  });

  test('generateRootSeed gives 32 fresh bytes each time', () => {
    const a = generateRootSeed();
    expect(a).toHaveLength(32);
    expect(generateRootSeed()).not.toEqual(a);
  });

  test('ready() is idempotent and loads libsodium', async () => {
    await ready();
    await ready();
    expect(typeof sodium().crypto_kdf_derive_from_key).toBe('function');
  });
});
