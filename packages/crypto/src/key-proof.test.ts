import { beforeAll, describe, expect, it } from 'vitest';
import { deriveIdentity, generateRootSeed } from './identity.ts';
import { type KeyProofStatement, keyProofMessage, signKeyProof, verifyKeyProof } from './key-proof.ts';
import { ready } from './sodium.ts';

const CHALLENGE = 'A'.repeat(43);
const REGISTER: KeyProofStatement = { purpose: 'register', relayId: 'relay-a', challenge: CHALLENGE };

describe('registration key proof', () => {
  beforeAll(ready);

  it('verifies a proof signed by the identity, for its own keys and challenge only', () => {
    const me = deriveIdentity(generateRootSeed());
    const other = deriveIdentity(generateRootSeed());
    const proof = signKeyProof(REGISTER, me);
    expect(proof).toHaveLength(64);
    expect(verifyKeyProof(REGISTER, me.signPublicKey, me.boxPublicKey, proof)).toBe(true);
    expect(
      verifyKeyProof({ ...REGISTER, challenge: 'B'.repeat(43) }, me.signPublicKey, me.boxPublicKey, proof),
    ).toBe(false);
    expect(verifyKeyProof(REGISTER, other.signPublicKey, me.boxPublicKey, proof)).toBe(false);
    // A proof cannot endorse somebody else's box key.
    expect(verifyKeyProof(REGISTER, me.signPublicKey, other.boxPublicKey, proof)).toBe(false);
    const flipped = proof.slice();
    flipped[10] = (flipped[10] ?? 0) ^ 1;
    expect(verifyKeyProof(REGISTER, me.signPublicKey, me.boxPublicKey, flipped)).toBe(false);
  });

  it('does not carry over to another relay, purpose or user', () => {
    const me = deriveIdentity(generateRootSeed());
    const check = (statement: KeyProofStatement, proof: Uint8Array) =>
      verifyKeyProof(statement, me.signPublicKey, me.boxPublicKey, proof);
    const registration = signKeyProof(REGISTER, me);
    expect(check({ ...REGISTER, relayId: 'relay-b' }, registration)).toBe(false);
    expect(check({ ...REGISTER, purpose: 'link' }, registration)).toBe(false);
    const setKeys: KeyProofStatement = { ...REGISTER, purpose: 'set-keys', userId: 'user_0123456789abcdef' };
    const forOne = signKeyProof(setKeys, me);
    expect(check(setKeys, forOne)).toBe(true);
    expect(check({ ...setKeys, userId: 'user_fedcba9876543210' }, forOne)).toBe(false);
  });

  it('lays out the message as domain, purpose, relay id, user id, challenge, sign_pk, box_pk', () => {
    const sign = new Uint8Array(32).fill(1);
    const box = new Uint8Array(32).fill(2);
    const message = keyProofMessage(
      { purpose: 'set-keys', relayId: 'r1', userId: 'user_0123456789abcdef', challenge: CHALLENGE },
      sign,
      box,
    );
    const text = 'scopesync:register-keys:v2\0set-keys\0r1\0user_0123456789abcdef\0' + `${CHALLENGE}\0`;
    expect(new TextDecoder().decode(message.subarray(0, text.length))).toBe(text);
    expect(message).toHaveLength(text.length + 64);
    expect(message.at(-1)).toBe(2);
    expect(() => keyProofMessage(REGISTER, sign, box.slice(1))).toThrowError(/32 bytes/);
    // The user is named exactly when the purpose needs one: no ambiguity between the forms.
    expect(() => keyProofMessage({ ...REGISTER, userId: 'user_0123456789abcdef' }, sign, box)).toThrowError(
      /names its user/,
    );
    expect(() => keyProofMessage({ ...REGISTER, purpose: 'set-keys' }, sign, box)).toThrowError(
      /names its user/,
    );
    expect(() => keyProofMessage({ ...REGISTER, relayId: 'a\0b' }, sign, box)).toThrowError(/relay id/);
  });
});
