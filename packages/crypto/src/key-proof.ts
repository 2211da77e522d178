import { SyncError } from '@scopesync/core';
import { concatBytes, utf8 } from './bytes.ts';
import type { Identity } from './identity.ts';
import { sodium } from './sodium.ts';

// Proof that whoever registers a signing key with a relay holds its secret half. Without it,
// anyone could register someone else's public key: to link a device to that person's account,
// or to squat the key so the owner's own registration lands in the squatter's account. The
// relay issues a single-use challenge; the client signs
//
//   "scopesync:register-keys:v1\0" ‖ challenge (its ASCII characters) ‖ 0x00 ‖ sign_pk (32) ‖ box_pk (32)
//
// with its Ed25519 key. Covering box_pk means the box key the relay hands out to sharers was
// endorsed by the same identity. This module is the one definition the client and relay share.

const DOMAIN = utf8('scopesync:register-keys:v1\0');
const PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;
const CHALLENGE = /^[A-Za-z0-9_-]{1,128}$/;

/** The bytes a registration proof signs. Throws BadRequest for keys that are not 32 bytes or a malformed challenge. */
export function keyProofMessage(challenge: string, signPk: Uint8Array, boxPk: Uint8Array): Uint8Array {
  if (signPk.length !== PUBLIC_KEY_BYTES || boxPk.length !== PUBLIC_KEY_BYTES) {
    throw new SyncError('BadRequest', 'sign_pk and box_pk must be 32 bytes each');
  }
  if (!CHALLENGE.test(challenge)) throw new SyncError('BadRequest', 'the challenge must be base64url');
  return concatBytes(DOMAIN, utf8(challenge), new Uint8Array([0]), signPk, boxPk);
}

/** Signs a relay's registration challenge with the identity's signing key: the 64-byte `proof` of POST /keys. */
export function signKeyProof(challenge: string, identity: Identity): Uint8Array {
  const message = keyProofMessage(challenge, identity.signPublicKey, identity.boxPublicKey);
  return sodium().crypto_sign_detached(message, identity.signSecretKey);
}

/** True when `proof` is `signPk`'s signature of the registration message for `challenge`, `signPk` and `boxPk`. */
export function verifyKeyProof(
  challenge: string,
  signPk: Uint8Array,
  boxPk: Uint8Array,
  proof: Uint8Array,
): boolean {
  if (proof.length !== SIGNATURE_BYTES) return false;
  let message: Uint8Array;
  try {
    message = keyProofMessage(challenge, signPk, boxPk);
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
