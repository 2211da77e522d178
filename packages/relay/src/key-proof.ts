import { randomBytes } from 'node:crypto';
import { SyncError } from '@scopesync/core';
import { keyProofMessage, verifyKeyProof } from '@scopesync/crypto';
import { parseBase64 } from './credentials.ts';

// The message layout is @scopesync/crypto's keyProofMessage, the one definition the client signs.
// Proof that whoever registers a signing key holds its secret half. Without it anyone could
// register someone else's public key: to "link" a device to that person's account, or to squat
// the key so that the owner's own registration lands in the squatter's account.
//
// The relay issues a single-use challenge (POST /keys/challenge); the client signs
//
//   "scopesync:register-keys:v1\0" ‖ challenge (its ASCII characters) ‖ 0x00 ‖ sign_pk (32) ‖ box_pk (32)
//
// with Ed25519 (libsodium `crypto_sign_detached` with the identity's sign secret key) and sends
// the 64-byte signature as `proof`. Covering box_pk means the box key the relay hands out to
// sharers was endorsed by the same identity.

/** Bytes of an Ed25519 signature. */
const SIGNATURE_BYTES = 64;
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

/** Options of {@link KeyChallenges}. */
export interface KeyChallengesOptions {
  /** How long a challenge stays redeemable, in ms. Default 5 minutes. */
  readonly ttlMs?: number;
  /** Most challenges outstanding at once; issuing more forgets the oldest. Default 10,000. */
  readonly maxOutstanding?: number;
  /** Epoch milliseconds; injectable for tests. */
  readonly now?: () => number;
}

/** A challenge as the relay hands it out. */
export interface IssuedChallenge {
  /** 32 random bytes, base64url (43 characters): what the proof signs. */
  readonly challenge: string;
  /** Epoch milliseconds after which it is refused. */
  readonly expiresAt: number;
}

/**
 * Single-use, short-lived challenges for registration proofs, held in memory: a relay restart
 * forgets them, and the client just asks again. Bounded, so a flood of requests cannot grow it.
 */
export class KeyChallenges {
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;
  /** challenge → expiry; Map order is issue order, so the first entries are the oldest. */
  readonly #open = new Map<string, number>();

  constructor(options: KeyChallengesOptions = {}) {
    this.#ttlMs = options.ttlMs ?? 5 * 60_000;
    this.#max = Math.max(1, options.maxOutstanding ?? 10_000);
    this.#now = options.now ?? Date.now;
  }

  /** A fresh challenge. */
  issue(): IssuedChallenge {
    const now = this.#now();
    this.#prune(now);
    while (this.#open.size >= this.#max) {
      const oldest = this.#open.keys().next().value;
      if (oldest === undefined) break;
      this.#open.delete(oldest);
    }
    const challenge = randomBytes(32).toString('base64url');
    const expiresAt = now + this.#ttlMs;
    this.#open.set(challenge, expiresAt);
    return { challenge, expiresAt };
  }

  /**
   * Redeems `challenge` and checks `proof` over it: Forbidden for an unknown, expired or already
   * used challenge, or a proof that is not `signPk`'s signature of {@link keyProofMessage}.
   * The challenge is spent whatever the outcome, so one challenge buys one attempt. Call it
   * after `@scopesync/crypto`'s `ready()`.
   */
  redeem(challenge: unknown, proof: unknown, signPk: Uint8Array, boxPk: Uint8Array): void {
    if (typeof challenge !== 'string' || !CHALLENGE.test(challenge)) {
      throw new SyncError('BadRequest', 'challenge must be the string POST /keys/challenge answered');
    }
    const signature = parseBase64(proof, 'proof', SIGNATURE_BYTES, SIGNATURE_BYTES);
    const expiresAt = this.#open.get(challenge);
    this.#open.delete(challenge);
    if (expiresAt === undefined || expiresAt < this.#now()) {
      throw new SyncError('Forbidden', 'unknown, used or expired challenge: ask POST /keys/challenge again');
    }
    // One definition of the proof, shared with the client's signKeyProof. Needs libsodium loaded.
    if (!verifyKeyProof(challenge, signPk, boxPk, signature)) {
      throw new SyncError('Forbidden', 'proof is not a signature of the challenge by sign_pk');
    }
  }

  #prune(now: number): void {
    for (const [challenge, expiresAt] of this.#open) {
      // Issue order is expiry order (one TTL), so the first live one ends the sweep.
      if (expiresAt >= now) break;
      this.#open.delete(challenge);
    }
  }
}

/** The bytes a registration proof signs, re-exported from `@scopesync/crypto` for relay callers. */
export { keyProofMessage };
