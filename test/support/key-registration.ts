import { createPrivateKey, sign } from 'node:crypto';
import { deriveIdentity, generateRootSeed, type Identity } from '@scopesync/crypto';
import { expect } from 'vitest';
import type { TestRelay } from './start-test-relay.ts';

// Registering devices with public keys the way a client does (docs/encryption.md), for the
// tests of the relay's key routes. The proof is signed with node:crypto rather than the
// client's code, so a mistake there cannot cancel out.

/** Bytes as base64url without padding, as the key routes carry them. */
export const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/** The registration proof: Ed25519 by `identity`'s sign key over domain ‖ challenge ‖ 0 ‖ `keys`' public keys. */
export function proofOf(identity: Identity, challenge: string, keys: Identity = identity): string {
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519, identity.signSecretKey.subarray(0, 32)]),
    format: 'der',
    type: 'pkcs8',
  });
  const message = Buffer.concat([
    Buffer.from('scopesync:register-keys:v1\0', 'utf8'),
    Buffer.from(challenge, 'ascii'),
    Buffer.from([0]),
    keys.signPublicKey,
    keys.boxPublicKey,
  ]);
  return sign(null, message, key).toString('base64url');
}

/** A device registered with public keys. */
export interface Device {
  readonly key: string;
  readonly userId: string;
  readonly identity: Identity;
}

/** Key registration against the relay `api` answers. */
export function keyRegistration(api: TestRelay['api']) {
  /** A fresh single-use challenge (`POST /keys/challenge`). */
  const challenge = async (): Promise<string> => {
    const answer = await api('POST', '/keys/challenge');
    expect(answer.status).toBe(200);
    expect(answer.json.expires_at).toBeGreaterThan(Date.now());
    return answer.json.challenge;
  };

  /** The body fields that register (or link) `identity`'s keys: the keys, a fresh challenge and its proof. */
  const keysBody = async (identity: Identity): Promise<Record<string, string>> => {
    const issued = await challenge();
    return {
      sign_pk: b64(identity.signPublicKey),
      box_pk: b64(identity.boxPublicKey),
      challenge: issued,
      proof: proofOf(identity, issued),
    };
  };

  /** Registers a device with `identity`'s keys (a fresh identity by default), proving its signing key. */
  const register = async (name: string, identity = deriveIdentity(generateRootSeed())): Promise<Device> => {
    const answer = await api('POST', '/keys', { body: { device_name: name, ...(await keysBody(identity)) } });
    expect(answer.status, JSON.stringify(answer.json)).toBe(200);
    return { key: answer.json.key, userId: answer.json.user_id, identity };
  };

  return { challenge, keysBody, register };
}
