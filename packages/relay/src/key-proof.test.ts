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

describe('key proofs', () => {
  // Proofs are verified with libsodium (crypto's verifyKeyProof); these are signed by node:crypto.
  beforeAll(ready);

  const box = new Uint8Array(randomBytes(32));

  it('lays the message out as documented', () => {
    const sign = new Uint8Array(32).fill(1);
    const message = new Uint8Array(keyProofMessage('abc', sign, box));
    const domain = Buffer.from('scopesync:register-keys:v1\0');
    expect(Buffer.from(message.subarray(0, domain.length))).toEqual(domain);
    expect(Buffer.from(message.subarray(domain.length, domain.length + 4)).toString('latin1')).toBe('abc\0');
    expect(message.subarray(domain.length + 4, domain.length + 36)).toEqual(sign);
    expect(message.subarray(domain.length + 36)).toEqual(box);
  });

  it('redeems a challenge once, with a proof by the key being registered', async () => {
    const challenges = new KeyChallenges();
    const { raw, privateKey } = keyPair();
    const other = keyPair();
    const { challenge, expiresAt } = await challenges.issue();
    expect(challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(expiresAt).toBeGreaterThan(Date.now());
    const proof = sign(null, keyProofMessage(challenge, raw, box), privateKey).toString('base64url');
    expect(verifyKeyProof(challenge, raw, box, Buffer.from(proof, 'base64url'))).toBe(true);
    expect(verifyKeyProof(challenge, other.raw, box, Buffer.from(proof, 'base64url'))).toBe(false);
    await challenges.redeem(challenge, proof, raw, box);
    // Single use: the same proof again is a replay.
    expect((await rejected(challenges.redeem(challenge, proof, raw, box))).kind).toBe('Forbidden');
  });

  it('spends a challenge on a failed attempt, and refuses proofs over other keys', async () => {
    const challenges = new KeyChallenges();
    const { raw, privateKey } = keyPair();
    const { challenge } = await challenges.issue();
    const otherBox = new Uint8Array(32).fill(9);
    // Signed over another box key: the proof must endorse exactly what is registered.
    const proof = sign(null, keyProofMessage(challenge, raw, otherBox), privateKey).toString('base64url');
    expect((await rejected(challenges.redeem(challenge, proof, raw, box))).message).toMatch(
      /not a signature/,
    );
    const good = sign(null, keyProofMessage(challenge, raw, box), privateKey).toString('base64url');
    expect((await rejected(challenges.redeem(challenge, good, raw, box))).kind).toBe('Forbidden');
    expect((await rejected(challenges.redeem('short', good, raw, box))).kind).toBe('BadRequest');
    expect(
      (await rejected(challenges.redeem((await challenges.issue()).challenge, 'AAAA', raw, box))).kind,
    ).toBe('BadRequest');
  });

  it('expires challenges and forgets the oldest beyond its bound', async () => {
    let now = 1_000;
    const challenges = new KeyChallenges({ ttlMs: 100, store: new MemoryChallengeStore(2), now: () => now });
    const { raw, privateKey } = keyPair();
    const prove = (c: string) => sign(null, keyProofMessage(c, raw, box), privateKey).toString('base64url');
    const expired = (await challenges.issue()).challenge;
    now += 101;
    expect((await rejected(challenges.redeem(expired, prove(expired), raw, box))).message).toMatch(/expired/);
    const first = (await challenges.issue()).challenge;
    const second = (await challenges.issue()).challenge;
    const third = (await challenges.issue()).challenge;
    expect((await rejected(challenges.redeem(first, prove(first), raw, box))).kind).toBe('Forbidden');
    await challenges.redeem(second, prove(second), raw, box);
    await challenges.redeem(third, prove(third), raw, box);
  });
});
