import { SyncError } from '@scopesync/core';
import { statementBytes, utf8 } from './bytes.ts';
import type { Identity } from './identity.ts';
import { sodium } from './sodium.ts';

// Proof that whoever registers a signing key with a relay holds its secret half. Without it,
// anyone could register someone else's public key: to link a device to that person's account,
// or to squat the key so the owner's own registration lands in the squatter's account. The
// relay issues a single-use challenge and publishes its relay id; the client signs
//
//   "scopesync:register-keys:v2\0" ‖ purpose ‖ 0x00 ‖ relay_id ‖ 0x00 ‖ user_id ‖ 0x00
//     ‖ challenge ‖ 0x00 ‖ sign_pk (32) ‖ box_pk (32)
//
// with its Ed25519 key. Every text field is ASCII from a closed grammar without NUL, so the
// NUL separators make the encoding unambiguous. The purpose and relay id mean a proof made to
// register a new user at one relay cannot link a device there, nor anything at another relay;
// the user id (empty when the user is "whoever holds sign_pk") means a proof made to set one
// user's keys cannot set another's. Covering box_pk means the box key the relay hands out to
// sharers was endorsed by the same identity. This module is the one definition the client and
// relay share.

const DOMAIN = utf8('scopesync:register-keys:v2\0');
const PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;
const CHALLENGE = /^[A-Za-z0-9_-]{1,128}$/;
/** A relay id: what `POST /keys/challenge` publishes as `relay_id`. */
const RELAY_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const USER_ID = /^(user_[0-9a-f]{16})?$/;

/**
 * What a registration proof is for:
 * - `register`: `POST /keys` makes a new user holding these keys (refused when a user holds them);
 * - `link`: `POST /keys` gives the user holding `sign_pk` a new device (refused when none does);
 * - `set-keys`: `PUT /users/<user_id>/keys` registers keys for an existing user.
 */
export type KeyProofPurpose = 'register' | 'link' | 'set-keys';

const PURPOSES: readonly KeyProofPurpose[] = ['register', 'link', 'set-keys'];

/** True for a {@link KeyProofPurpose}. */
export function isKeyProofPurpose(value: unknown): value is KeyProofPurpose {
  return typeof value === 'string' && (PURPOSES as readonly string[]).includes(value);
}

/** Everything a registration proof states, besides the keys. */
export interface KeyProofStatement {
  readonly purpose: KeyProofPurpose;
  /** The relay's id, as its `POST /keys/challenge` answer published it. */
  readonly relayId: string;
  /** The user the keys are for: required for `set-keys`, empty (or absent) for `register` and `link`. */
  readonly userId?: string | undefined;
  /** The single-use challenge the same relay issued. */
  readonly challenge: string;
}

/**
 * The bytes a registration proof signs. Throws BadRequest for keys that are not 32 bytes, a
 * malformed challenge, relay id or user id, a user id on `register`/`link`, or none on `set-keys`.
 */
export function keyProofMessage(
  statement: KeyProofStatement,
  signPk: Uint8Array,
  boxPk: Uint8Array,
): Uint8Array {
  if (signPk.length !== PUBLIC_KEY_BYTES || boxPk.length !== PUBLIC_KEY_BYTES) {
    throw new SyncError('BadRequest', 'sign_pk and box_pk must be 32 bytes each');
  }
  const { purpose, relayId, challenge } = statement;
  const userId = statement.userId ?? '';
  if (!isKeyProofPurpose(purpose))
    throw new SyncError('BadRequest', `unknown proof purpose ${String(purpose)}`);
  if (!CHALLENGE.test(challenge)) throw new SyncError('BadRequest', 'the challenge must be base64url');
  if (!RELAY_ID.test(relayId)) throw new SyncError('BadRequest', 'malformed relay id');
  if (!USER_ID.test(userId)) throw new SyncError('BadRequest', 'malformed user id');
  if ((purpose === 'set-keys') !== (userId !== '')) {
    throw new SyncError('BadRequest', 'a set-keys proof names its user; register and link proofs name none');
  }
  return statementBytes(DOMAIN, [purpose, relayId, userId, challenge], [signPk, boxPk]);
}

/** Signs a registration statement with the identity's signing key: the 64-byte `proof` of POST /keys or PUT /users/<id>/keys. */
export function signKeyProof(statement: KeyProofStatement, identity: Identity): Uint8Array {
  const message = keyProofMessage(statement, identity.signPublicKey, identity.boxPublicKey);
  return sodium().crypto_sign_detached(message, identity.signSecretKey);
}

/** True when `proof` is `signPk`'s signature of the registration message for `statement`, `signPk` and `boxPk`. */
export function verifyKeyProof(
  statement: KeyProofStatement,
  signPk: Uint8Array,
  boxPk: Uint8Array,
  proof: Uint8Array,
): boolean {
  if (proof.length !== SIGNATURE_BYTES) return false;
  let message: Uint8Array;
  try {
    message = keyProofMessage(statement, signPk, boxPk);
  } catch {
    return false;
  }
  try {
    return sodium().crypto_sign_verify_detached(proof, message, signPk);
  } catch {
    // A public key that is not a curve point cannot have signed anything.
    return false;
  }
}
