import { isUserId, SyncError } from '@scopesync/core';
import { bytesEqual, checkLength, checkU32, concatBytes, readU32, utf8, writeU32 } from './bytes.ts';
import { DOC_NAME_HASH_BYTES, docNameHash } from './doc-name-hash.ts';
import { decodeClock, ENVELOPE_HASH_BYTES, encodeClock, type StreamHead } from './history-clock.ts';
import { sodium } from './sodium.ts';

// A member's signed view of an encrypted document's history: which member list version and
// snapshot it has seen, and the last envelope of every author stream. Members publish theirs
// through the relay (an opaque record per member) and compare: a relay that shows two members
// different histories (a fork) or a fresh device an old one (a rollback) is caught because the
// heads it would have to alter are signed.
//
// Layout, version 1 (integers big-endian):
//   0   1   format = 1
//   1   32  doc name hash
//   33  32  signer Ed25519 public key
//   65  21  signer user id
//   86  4   member list version seen (0: none)
//   90  32  hash of the last snapshot seen (zeros: none)
//   122 …   clock (history-clock.ts)
//   end-64  Ed25519 over "scopesync:signed-head:v1\0" ‖ bytes[0, end-64)

const FORMAT = 1;
const OFFSET_SIGNER = 1 + DOC_NAME_HASH_BYTES;
const OFFSET_USER = OFFSET_SIGNER + 32;
const OFFSET_LIST = OFFSET_USER + 21;
const OFFSET_SNAPSHOT = OFFSET_LIST + 4;
const OFFSET_CLOCK = OFFSET_SNAPSHOT + ENVELOPE_HASH_BYTES;
const SIGNATURE_BYTES = 64;
const SIGN_DOMAIN = utf8('scopesync:signed-head:v1\0');

/** What a member has seen of a document's history. */
export interface SignedHead {
  readonly signerKey: Uint8Array;
  readonly userId: string;
  readonly memberListVersion: number;
  readonly snapshot: Uint8Array;
  readonly clock: readonly StreamHead[];
}

/** Signs a head for `docName`. Requires `ready()`. */
export function signHead(
  docName: string,
  signer: { readonly userId: string; readonly signPublicKey: Uint8Array; readonly signSecretKey: Uint8Array },
  head: Omit<SignedHead, 'signerKey' | 'userId'>,
): Uint8Array {
  if (!isUserId(signer.userId)) throw new SyncError('BadRequest', 'signer user id is not a user id');
  const fixed = new Uint8Array(OFFSET_CLOCK);
  fixed[0] = FORMAT;
  fixed.set(docNameHash(docName), 1);
  fixed.set(checkLength(signer.signPublicKey, 32, 'signer key'), OFFSET_SIGNER);
  fixed.set(utf8(signer.userId), OFFSET_USER);
  writeU32(fixed, OFFSET_LIST, checkU32(head.memberListVersion, 'member list version'));
  fixed.set(checkLength(head.snapshot, ENVELOPE_HASH_BYTES, 'snapshot hash'), OFFSET_SNAPSHOT);
  const body = concatBytes(fixed, encodeClock(head.clock));
  return concatBytes(
    body,
    sodium().crypto_sign_detached(concatBytes(SIGN_DOMAIN, body), signer.signSecretKey),
  );
}

/**
 * Verifies a signed head for `docName`: well formed (BadRequest), signed by its signer for this
 * document, and the signer allowed by `isSignerAllowed` (Forbidden otherwise). Requires `ready()`.
 */
export function verifyHead(
  bytes: Uint8Array,
  docName: string,
  isSignerAllowed: (signerKey: Uint8Array, userId: string) => boolean,
): SignedHead {
  if (
    !(bytes instanceof Uint8Array) ||
    bytes.length < OFFSET_CLOCK + 4 + SIGNATURE_BYTES ||
    bytes[0] !== FORMAT
  ) {
    throw new SyncError('BadRequest', 'malformed signed head');
  }
  const body = bytes.subarray(0, bytes.length - SIGNATURE_BYTES);
  const { heads, end } = decodeClock(body, OFFSET_CLOCK);
  if (end !== body.length) throw new SyncError('BadRequest', 'malformed signed head: length');
  const signerKey = bytes.slice(OFFSET_SIGNER, OFFSET_USER);
  const userId = String.fromCharCode(...bytes.subarray(OFFSET_USER, OFFSET_LIST));
  if (!isUserId(userId)) throw new SyncError('BadRequest', 'malformed signed head: user id');
  let valid = false;
  try {
    valid = sodium().crypto_sign_verify_detached(
      bytes.subarray(body.length),
      concatBytes(SIGN_DOMAIN, body),
      signerKey,
    );
  } catch {
    valid = false;
  }
  if (!valid) throw new SyncError('Forbidden', 'signed head does not verify');
  if (!bytesEqual(bytes.subarray(1, OFFSET_SIGNER), docNameHash(docName))) {
    throw new SyncError('Forbidden', 'signed head is for another document');
  }
  if (!isSignerAllowed(signerKey, userId))
    throw new SyncError('Forbidden', `${userId} may not sign heads here`);
  return {
    signerKey,
    userId,
    memberListVersion: readU32(bytes, OFFSET_LIST),
    snapshot: bytes.slice(OFFSET_SNAPSHOT, OFFSET_CLOCK),
    clock: heads,
  };
}
