import { randomBytes } from 'node:crypto';
import { SyncError } from '@scopesync/core';
import { type KeyProofPurpose, keyProofMessage, verifyKeyProof } from '@scopesync/crypto';
import { type ChallengeStore, MemoryChallengeStore } from './challenge-store.ts';
import { parseBase64 } from './credentials.ts';

// The message layout is @scopesync/crypto's keyProofMessage, the one definition the client signs.
// Proof that whoever registers a signing key holds its secret half. Without it anyone could
// register someone else's public key: to "link" a device to that person's account, or to squat
// the key so that the owner's own registration lands in the squatter's account.
//
// The relay issues a single-use challenge (POST /keys/challenge) together with its relay id;
// the client signs (Ed25519, the identity's sign key)
//
//   "scopesync:register-keys:v2\0" ‖ purpose ‖ 0 ‖ relay_id ‖ 0 ‖ user_id ‖ 0 ‖ challenge ‖ 0 ‖ sign_pk (32) ‖ box_pk (32)
//
// and sends the 64-byte signature as `proof`. The relay checks it against its own relay id and
// the purpose and user of the route that redeems it, so a proof is good for one relay, one
// purpose and one user only.

/** Bytes of an Ed25519 signature. */
const SIGNATURE_BYTES = 64;
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

/** Options of {@link KeyChallenges}. */
export interface KeyChallengesOptions {
  /** How long a challenge stays redeemable, in ms. Default 5 minutes. */
  readonly ttlMs?: number;
  /** Where challenges wait to be redeemed. Default: in memory, at most 10,000 outstanding. */
  readonly store?: ChallengeStore;
  /** Epoch milliseconds; injectable for tests. */
  readonly now?: () => number;
  /**
   * The relay id proofs must name. Relays that redeem each other's challenges (a shared
   * {@link ChallengeStore}) must share it. Default: a random id for this process, right for
   * challenges kept in this process's memory.
   */
  readonly relayId?: string | undefined;
}

/** A challenge as the relay hands it out. */
export interface IssuedChallenge {
  /** 32 random bytes, base64url (43 characters): what the proof signs. */
  readonly challenge: string;
  /** Epoch milliseconds after which it is refused. */
  readonly expiresAt: number;
  /** The relay id the proof must name. */
  readonly relayId: string;
}

/** What a redeemed proof must state besides the keys: the route's purpose and user. */
export interface ProofPurpose {
  readonly purpose: KeyProofPurpose;
  /** The user whose keys are set (`set-keys`); absent for `register` and `link`. */
  readonly userId?: string | undefined;
}

/**
 * Single-use, short-lived challenges for registration proofs: issued here, kept in a
 * {@link ChallengeStore} (in memory by default, shared between relays when they are several).
 */
export class KeyChallenges {
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #store: ChallengeStore;
  /** The relay id every proof redeemed here must name. */
  readonly relayId: string;

  constructor(options: KeyChallengesOptions = {}) {
    this.relayId = options.relayId ?? `relay-${randomBytes(12).toString('base64url')}`;
    if (!/^[A-Za-z0-9._:-]{1,128}$/.test(this.relayId)) {
      throw new SyncError('BadRequest', 'a relay id is 1-128 characters of [A-Za-z0-9._:-]');
    }
    this.#ttlMs = options.ttlMs ?? 5 * 60_000;
    this.#now = options.now ?? Date.now;
    this.#store = options.store ?? new MemoryChallengeStore();
  }

  /** A fresh challenge. */
  async issue(): Promise<IssuedChallenge> {
    const challenge = randomBytes(32).toString('base64url');
    const expiresAt = this.#now() + this.#ttlMs;
    await this.#store.issue(challenge, expiresAt);
    return { challenge, expiresAt, relayId: this.relayId };
  }

  /**
   * Redeems `challenge` and checks `proof` over it: Forbidden for an unknown, expired or already
   * used challenge, or a proof that is not `signPk`'s signature of {@link keyProofMessage} for
   * this relay's id and `purpose` (a proof made for another relay, purpose or user).
   * The challenge is spent whatever the outcome, so one challenge buys one attempt. Call it
   * after `@scopesync/crypto`'s `ready()`.
   */
  async redeem(
    challenge: unknown,
    proof: unknown,
    signPk: Uint8Array,
    boxPk: Uint8Array,
    purpose: ProofPurpose,
  ): Promise<void> {
    if (typeof challenge !== 'string' || !CHALLENGE.test(challenge)) {
      throw new SyncError('BadRequest', 'challenge must be the string POST /keys/challenge answered');
    }
    const signature = parseBase64(proof, 'proof', SIGNATURE_BYTES, SIGNATURE_BYTES);
    if (!(await this.#store.redeem(challenge, this.#now()))) {
      throw new SyncError('Forbidden', 'unknown, used or expired challenge: ask POST /keys/challenge again');
    }
    // One definition of the proof, shared with the client's signKeyProof. Needs libsodium loaded.
    const statement = { ...purpose, relayId: this.relayId, challenge };
    if (!verifyKeyProof(statement, signPk, boxPk, signature)) {
      throw new SyncError(
        'Forbidden',
        `proof is not sign_pk's signature of a ${purpose.purpose} proof for this relay (${this.relayId}) and challenge`,
      );
    }
  }
}

/** The bytes a registration proof signs, re-exported from `@scopesync/crypto` for relay callers. */
export { keyProofMessage };
