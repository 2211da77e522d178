import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { isSyncError, type SyncError } from '@scopesync/core';
import { ready, verifyKeyProof } from '@scopesync/crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryChallengeStore } from './challenge-store.ts';
import { KeyChallenges, keyProofMessage } from './key-proof.ts';

/** An Ed25519 pair from node:crypto, with the raw 32-byte public key. */
function keyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32));
  return { raw, privateKey };
}

async function rejected(attempt: Promise<unknown>): Promise<SyncError> {
  try {
    await attempt;
  } catch (error) {
    if (isSyncError(error)) return error;
    throw error;
  }
  throw new Error('expected a SyncError');
}

const REGISTER = { purpose: 'register' } as const;

/** A register proof's statement for `challenge` at the relay of `challenges`. */
const statement = (challenges: KeyChallenges, challenge: string) => ({
  ...REGISTER,
  relayId: challenges.relayId,
  challenge,
});

describe('key proofs', () => {
  // Proofs are verified with libsodium (crypto's verifyKeyProof); these are signed by node:crypto.
  beforeAll(ready);

  const box = new Uint8Array(randomBytes(32));

  it('lays the message out as documented', () => {
    const sign = new Uint8Array(32).fill(1);
    const message = new Uint8Array(
      keyProofMessage({ purpose: 'link', relayId: 'r1', challenge: 'abc' }, sign, box),
    );
    const text = Buffer.from('scopesync:register-keys:v2\0link\0r1\0\0abc\0');
    expect(Buffer.from(message.subarray(0, text.length))).toEqual(text);
    expect(message.subarray(text.length, text.length + 32)).toEqual(sign);
    expect(message.subarray(text.length + 32)).toEqual(box);
  });

  it('redeems a challenge once, with a proof by the key being registered', async () => {
    const challenges = new KeyChallenges();
    const { raw, privateKey } = keyPair();
    const other = keyPair();
    const { challenge, expiresAt } = await challenges.issue();
    expect(challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(expiresAt).toBeGreaterThan(Date.now());
    const proof = sign(
      null,
      keyProofMessage(statement(challenges, challenge), raw, box),
      privateKey,
    ).toString('base64url');
    expect(verifyKeyProof(statement(challenges, challenge), raw, box, Buffer.from(proof, 'base64url'))).toBe(
      true,
    );
    expect(
      verifyKeyProof(statement(challenges, challenge), other.raw, box, Buffer.from(proof, 'base64url')),
    ).toBe(false);
    await challenges.redeem(challenge, proof, raw, box, REGISTER);
    // Single use: the same proof again is a replay.
    expect((await rejected(challenges.redeem(challenge, proof, raw, box, REGISTER))).kind).toBe('Forbidden');
  });

  it('spends a challenge on a failed attempt, and refuses proofs over other keys', async () => {
    const challenges = new KeyChallenges();
    const { raw, privateKey } = keyPair();
    const { challenge } = await challenges.issue();
    const otherBox = new Uint8Array(32).fill(9);
    // Signed over another box key: the proof must endorse exactly what is registered.
    const proof = sign(
      null,
      keyProofMessage(statement(challenges, challenge), raw, otherBox),
      privateKey,
    ).toString('base64url');
    expect((await rejected(challenges.redeem(challenge, proof, raw, box, REGISTER))).message).toMatch(
      /not sign_pk's signature/,
    );
    const good = sign(null, keyProofMessage(statement(challenges, challenge), raw, box), privateKey).toString(
      'base64url',
    );
    expect((await rejected(challenges.redeem(challenge, good, raw, box, REGISTER))).kind).toBe('Forbidden');
    expect((await rejected(challenges.redeem('short', good, raw, box, REGISTER))).kind).toBe('BadRequest');
    expect(
      (await rejected(challenges.redeem((await challenges.issue()).challenge, 'AAAA', raw, box, REGISTER)))
        .kind,
    ).toBe('BadRequest');
  });

  it('expires challenges and forgets the oldest beyond its bound', async () => {
    let now = 1_000;
    const challenges = new KeyChallenges({ ttlMs: 100, store: new MemoryChallengeStore(2), now: () => now });
    const { raw, privateKey } = keyPair();
    const prove = (c: string) =>
      sign(null, keyProofMessage(statement(challenges, c), raw, box), privateKey).toString('base64url');
    const expired = (await challenges.issue()).challenge;
    now += 101;
    expect((await rejected(challenges.redeem(expired, prove(expired), raw, box, REGISTER))).message).toMatch(
      /expired/,
    );
    const first = (await challenges.issue()).challenge;
    const second = (await challenges.issue()).challenge;
    const third = (await challenges.issue()).challenge;
    expect((await rejected(challenges.redeem(first, prove(first), raw, box, REGISTER))).kind).toBe(
      'Forbidden',
    );
    await challenges.redeem(second, prove(second), raw, box, REGISTER);
    await challenges.redeem(third, prove(third), raw, box, REGISTER);
  });

  it('refuses a proof made for another relay, purpose or user', async () => {
    const here = new KeyChallenges();
    const elsewhere = new KeyChallenges();
    expect(here.relayId).not.toBe(elsewhere.relayId);
    const { raw, privateKey } = keyPair();
    const prove = (s: Parameters<typeof keyProofMessage>[0]) =>
      sign(null, keyProofMessage(s, raw, box), privateKey).toString('base64url');
    // Another relay's id: the challenge was issued here, but the proof was made for elsewhere.
    let { challenge } = await here.issue();
    const forElsewhere = prove({ ...REGISTER, relayId: elsewhere.relayId, challenge });
    expect((await rejected(here.redeem(challenge, forElsewhere, raw, box, REGISTER))).kind).toBe('Forbidden');
    // A register proof does not link, and a set-keys proof for one user does not set another's.
    ({ challenge } = await here.issue());
    const registration = prove({ ...REGISTER, relayId: here.relayId, challenge });
    expect((await rejected(here.redeem(challenge, registration, raw, box, { purpose: 'link' }))).kind).toBe(
      'Forbidden',
    );
    ({ challenge } = await here.issue());
    const setKeys = { purpose: 'set-keys', userId: 'user_0123456789abcdef' } as const;
    const forOne = prove({ ...setKeys, relayId: here.relayId, challenge });
    const other = { ...setKeys, userId: 'user_fedcba9876543210' };
    expect((await rejected(here.redeem(challenge, forOne, raw, box, other))).kind).toBe('Forbidden');
    ({ challenge } = await here.issue());
    await here.redeem(challenge, prove({ ...setKeys, relayId: here.relayId, challenge }), raw, box, setKeys);
  });
});
