import { beforeAll, describe, expect, it } from 'vitest';
import { deriveIdentity, generateRootSeed } from './identity.ts';
import { keyProofMessage, signKeyProof, verifyKeyProof } from './key-proof.ts';
import { ready } from './sodium.ts';

const CHALLENGE = 'A'.repeat(43);

describe('registration key proof', () => {
  beforeAll(ready);

  it('verifies a proof signed by the identity, for its own keys and challenge only', () => {
    const me = deriveIdentity(generateRootSeed());
    const other = deriveIdentity(generateRootSeed());
    const proof = signKeyProof(CHALLENGE, me);
    expect(proof).toHaveLength(64);
    expect(verifyKeyProof(CHALLENGE, me.signPublicKey, me.boxPublicKey, proof)).toBe(true);
    expect(verifyKeyProof('B'.repeat(43), me.signPublicKey, me.boxPublicKey, proof)).toBe(false);
    expect(verifyKeyProof(CHALLENGE, other.signPublicKey, me.boxPublicKey, proof)).toBe(false);
    // A proof cannot endorse somebody else's box key.
    expect(verifyKeyProof(CHALLENGE, me.signPublicKey, other.boxPublicKey, proof)).toBe(false);
    const flipped = proof.slice();
    flipped[10] = (flipped[10] ?? 0) ^ 1;
    expect(verifyKeyProof(CHALLENGE, me.signPublicKey, me.boxPublicKey, flipped)).toBe(false);
  });

  it('lays out the message as domain, challenge, 0, sign_pk, box_pk', () => {
    const sign = new Uint8Array(32).fill(1);
    const box = new Uint8Array(32).fill(2);
    const message = keyProofMessage(CHALLENGE, sign, box);
    const domain = 'scopesync:register-keys:v1\0';
    expect(message).toHaveLength(domain.length + 43 + 1 + 64);
    expect(message[domain.length + 43]).toBe(0);
    expect(message.at(-1)).toBe(2);
    expect(() => keyProofMessage(CHALLENGE, sign, box.slice(1))).toThrowError(/32 bytes/);
  });
});
