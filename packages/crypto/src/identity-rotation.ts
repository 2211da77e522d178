import { SyncError } from '@scopesync/core';
import { statementBytes, utf8 } from './bytes.ts';
import type { Identity } from './identity.ts';
import { sodium } from './sodium.ts';

// An identity rotation: the user's registered signing key hands the account over to a new one
// (a new root seed), after a device that held the old seed was lost. The old key signs
//
//   "scopesync:identity-rotation:v1\0" ‖ relay_id ‖ 0x00 ‖ user_id ‖ 0x00 ‖ challenge ‖ 0x00
//     ‖ old sign_pk (32) ‖ new sign_pk (32) ‖ new box_pk (32)
//
// and the new key proves itself with an ordinary `set-keys` registration proof over the same
// challenge (key-proof.ts). The relay then registers the new keys in place of the old ones and
// revokes the user's other API keys: whoever kept the old seed can no longer link a device or
// sign envelopes. Text fields come from NUL-free grammars, so the encoding is unambiguous.

const DOMAIN = utf8('scopesync:identity-rotation:v1\0');
const PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;

/** What an identity rotation states. */
export interface IdentityRotation {
  /** The relay's id (`POST /keys/challenge` answers it). */
  readonly relayId: string;
  readonly userId: string;
  /** A challenge of the same relay, also signed by the new key's `set-keys` proof. */
  readonly challenge: string;
  readonly oldSignPk: Uint8Array;
  readonly newSignPk: Uint8Array;
  readonly newBoxPk: Uint8Array;
}

/** The bytes the old signing key signs. BadRequest for keys that are not 32 bytes or text fields with a NUL. */
export function identityRotationMessage(rotation: IdentityRotation): Uint8Array {
  const { relayId, userId, challenge, oldSignPk, newSignPk, newBoxPk } = rotation;
  for (const key of [oldSignPk, newSignPk, newBoxPk]) {
    if (!(key instanceof Uint8Array) || key.length !== PUBLIC_KEY_BYTES) {
      throw new SyncError('BadRequest', 'rotation keys must be 32 bytes each');
    }
  }
  for (const text of [relayId, userId, challenge]) {
    if (typeof text !== 'string' || text.length === 0 || text.includes('\0')) {
      throw new SyncError('BadRequest', 'relay id, user id and challenge must be non-empty and NUL-free');
    }
  }
  return statementBytes(DOMAIN, [relayId, userId, challenge], [oldSignPk, newSignPk, newBoxPk]);
}

/** The statement both keys sign: `previous` hands the user over to `next`. */
function handOverMessage(
  statement: { readonly relayId: string; readonly userId: string; readonly challenge: string },
  previous: Pick<Identity, 'signPublicKey'>,
  next: Pick<Identity, 'signPublicKey' | 'boxPublicKey'>,
): Uint8Array {
  return identityRotationMessage({
    ...statement,
    oldSignPk: previous.signPublicKey,
    newSignPk: next.signPublicKey,
    newBoxPk: next.boxPublicKey,
  });
}

/** The old identity's 64-byte signature handing `userId` over to `next` at this relay. Requires `ready()`. */
export function signIdentityRotation(
  statement: { readonly relayId: string; readonly userId: string; readonly challenge: string },
  previous: Identity,
  next: Pick<Identity, 'signPublicKey' | 'boxPublicKey'>,
): Uint8Array {
  return sodium().crypto_sign_detached(handOverMessage(statement, previous, next), previous.signSecretKey);
}

/**
 * The new identity's 64-byte countersignature of the same statement: it accepts the hand-over
 * from `previous`. Without it, anyone could claim that a key of their own once held the user and
 * handed it to the new key (the old key's signature alone proves nothing about the new one).
 * Requires `ready()`.
 */
export function countersignIdentityRotation(
  statement: { readonly relayId: string; readonly userId: string; readonly challenge: string },
  previous: Pick<Identity, 'signPublicKey'>,
  next: Identity,
): Uint8Array {
  return sodium().crypto_sign_detached(handOverMessage(statement, previous, next), next.signSecretKey);
}

/** True when `signature` is the old key's signature of `rotation`. Requires `ready()`. */
export function verifyIdentityRotation(rotation: IdentityRotation, signature: Uint8Array): boolean {
  return verifyBy(rotation, signature, rotation.oldSignPk);
}

/** True when `signature` is the new key's countersignature of `rotation`. Requires `ready()`. */
export function verifyIdentityRotationCountersignature(
  rotation: IdentityRotation,
  signature: Uint8Array,
): boolean {
  return verifyBy(rotation, signature, rotation.newSignPk);
}

function verifyBy(rotation: IdentityRotation, signature: Uint8Array, key: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false;
  let message: Uint8Array;
  try {
    message = identityRotationMessage(rotation);
  } catch {
    return false;
  }
  try {
    return sodium().crypto_sign_verify_detached(signature, message, key);
  } catch {
    return false;
  }
}
