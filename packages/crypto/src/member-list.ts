import { isShareLevel, isUserId, parseDocName, type ShareLevel, SyncError } from '@scopesync/core';
import {
  bytesEqual,
  checkLength,
  checkU32,
  concatBytes,
  fromHex,
  readU32,
  toHex,
  utf8,
  writeU32,
} from './bytes.ts';
import { KEY_ID_BYTES } from './doc-key.ts';
import { DOC_NAME_HASH_BYTES, docNameHash } from './doc-name-hash.ts';
import { sodium } from './sodium.ts';

// The member list of an encrypted blob: who may read it, who may write it, with which pinned
// public keys, and which document key (epoch, key id) is current. The owner signs every version,
// and each version chains the hash of the one before, so a relay can neither forge, edit, drop
// nor reorder versions without readers noticing. Clients take writers, readers and the valid
// (epoch, key id) pairs only from a verified chain.
//
// Layout, version 1 (integers big-endian):
//   off   size  field
//   0     1     format = 1
//   1     4     list version (1, 2, …)
//   5     32    hash of the previous list version (zeros for version 1): memberListHash()
//   37    32    doc name hash of `blob/<id>`
//   69    32    owner Ed25519 public key
//   101   21    owner user id
//   122   4     epoch of the current document key
//   126   16    key id of the current document key
//   142   2     N members (the owner excluded)
//   144   N×86  user id 21 ‖ level 1 (1 read_only, 2 read_write) ‖ sign pk 32 ‖ box pk 32
//   end-64 64   Ed25519 by the owner over "scopesync:member-list:v1\0" ‖ bytes[0, end-64)

const FORMAT = 1;
const USER_ID_BYTES = 21;
const KEY_BYTES = 32;
const HASH_BYTES = 32;
const SIGNATURE_BYTES = 64;
const MEMBER_BYTES = USER_ID_BYTES + 1 + KEY_BYTES + KEY_BYTES;
const OFFSET_PREVIOUS = 5;
const OFFSET_DOC_HASH = OFFSET_PREVIOUS + HASH_BYTES;
const OFFSET_OWNER_KEY = OFFSET_DOC_HASH + DOC_NAME_HASH_BYTES;
const OFFSET_OWNER_ID = OFFSET_OWNER_KEY + KEY_BYTES;
const OFFSET_EPOCH = OFFSET_OWNER_ID + USER_ID_BYTES;
const OFFSET_KEY_ID = OFFSET_EPOCH + 4;
const OFFSET_COUNT = OFFSET_KEY_ID + KEY_ID_BYTES;
const OFFSET_MEMBERS = OFFSET_COUNT + 2;
const MAX_MEMBERS = 10_000;
const SIGN_DOMAIN = utf8('scopesync:member-list:v1\0');
const HASH_DOMAIN = utf8('scopesync:member-list-hash:v1\0');
const LEVEL_BYTE: Record<ShareLevel, number> = { read_only: 1, read_write: 2 };

/** One member of an encrypted blob, with the public keys the owner pinned for them. */
export interface Member {
  readonly userId: string;
  readonly level: ShareLevel;
  readonly signPublicKey: Uint8Array;
  readonly boxPublicKey: Uint8Array;
}

/** The content of one member list version. */
export interface MemberList {
  readonly version: number;
  /** Hash of the previous version; zeros for version 1. */
  readonly previous: Uint8Array;
  readonly docNameHash: Uint8Array;
  readonly ownerKey: Uint8Array;
  readonly ownerId: string;
  /** The current document key's epoch and id: envelopes under them are valid from this version on. */
  readonly epoch: number;
  readonly keyId: string;
  readonly members: readonly Member[];
  /** {@link memberListHash} of these bytes: what the next version chains. */
  readonly hash: Uint8Array;
}

/** Input of {@link signMemberList}. */
export interface SignMemberListOptions {
  readonly docName: string;
  /** The version before this one (its bytes), or undefined for the first. */
  readonly previous?: Uint8Array | undefined;
  readonly owner: {
    readonly userId: string;
    readonly signPublicKey: Uint8Array;
    readonly signSecretKey: Uint8Array;
  };
  readonly epoch: number;
  readonly keyId: string;
  readonly members: readonly Member[];
}

function bad(message: string): SyncError {
  return new SyncError('BadRequest', `malformed member list: ${message}`);
}

/** BLAKE2b-256 of a member list version's bytes. Requires `ready()`. */
export function memberListHash(bytes: Uint8Array): Uint8Array {
  return sodium().crypto_generichash(HASH_BYTES, concatBytes(HASH_DOMAIN, bytes), null);
}

/**
 * Signs the next version of a blob's member list as its owner (version 1 when `previous` is
 * undefined). BadRequest for malformed input, an owner listed as a member, or a duplicate member.
 * Requires `ready()`.
 */
export function signMemberList(options: SignMemberListOptions): Uint8Array {
  const { owner, members } = options;
  const address = parseDocName(options.docName);
  if (address.kind !== 'blob') throw new SyncError('BadRequest', 'member lists are for blobs');
  if (!isUserId(owner.userId)) throw new SyncError('BadRequest', 'owner user id is not a user id');
  checkLength(owner.signPublicKey, KEY_BYTES, 'owner signing public key');
  checkLength(owner.signSecretKey, 64, 'owner signing secret key');
  if (members.length > MAX_MEMBERS) throw new SyncError('TooLarge', `at most ${MAX_MEMBERS} members`);
  const previous = options.previous === undefined ? undefined : readMemberList(options.previous);
  const seen = new Set<string>([owner.userId]);
  const body = new Uint8Array(OFFSET_MEMBERS + members.length * MEMBER_BYTES);
  body[0] = FORMAT;
  writeU32(body, 1, previous === undefined ? 1 : previous.version + 1);
  if (previous) body.set(previous.hash, OFFSET_PREVIOUS);
  body.set(docNameHash(address.name), OFFSET_DOC_HASH);
  body.set(owner.signPublicKey, OFFSET_OWNER_KEY);
  body.set(utf8(owner.userId), OFFSET_OWNER_ID);
  writeU32(body, OFFSET_EPOCH, checkU32(options.epoch, 'epoch'));
  body.set(checkLength(fromHex(options.keyId, 'key id'), KEY_ID_BYTES, 'key id'), OFFSET_KEY_ID);
  new DataView(body.buffer).setUint16(OFFSET_COUNT, members.length, false);
  let at = OFFSET_MEMBERS;
  for (const member of [...members].sort((a, b) => (a.userId < b.userId ? -1 : 1))) {
    if (!isUserId(member.userId)) throw new SyncError('BadRequest', `${member.userId} is not a user id`);
    if (seen.has(member.userId)) throw new SyncError('BadRequest', `${member.userId} is listed twice`);
    seen.add(member.userId);
    if (!isShareLevel(member.level))
      throw new SyncError('BadRequest', 'level must be read_only or read_write');
    body.set(utf8(member.userId), at);
    body[at + USER_ID_BYTES] = LEVEL_BYTE[member.level];
    body.set(checkLength(member.signPublicKey, KEY_BYTES, 'member signing key'), at + USER_ID_BYTES + 1);
    body.set(
      checkLength(member.boxPublicKey, KEY_BYTES, 'member box key'),
      at + USER_ID_BYTES + 1 + KEY_BYTES,
    );
    at += MEMBER_BYTES;
  }
  const signature = sodium().crypto_sign_detached(concatBytes(SIGN_DOMAIN, body), owner.signSecretKey);
  return concatBytes(body, signature);
}

/** Reads a member list version without verifying its signature. BadRequest when malformed. Requires `ready()`. */
export function readMemberList(bytes: Uint8Array): MemberList {
  if (!(bytes instanceof Uint8Array)) throw bad('not bytes');
  if (bytes.length < OFFSET_MEMBERS + SIGNATURE_BYTES) throw bad('truncated');
  if (bytes[0] !== FORMAT) throw bad(`unsupported format ${bytes[0]}`);
  const count = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(OFFSET_COUNT, false);
  if (bytes.length !== OFFSET_MEMBERS + count * MEMBER_BYTES + SIGNATURE_BYTES)
    throw bad('length does not match');
  const text = (from: number): string => {
    const id = String.fromCharCode(...bytes.subarray(from, from + USER_ID_BYTES));
    if (!isUserId(id)) throw bad('bad user id');
    return id;
  };
  const members: Member[] = [];
  for (let i = 0, at = OFFSET_MEMBERS; i < count; i++, at += MEMBER_BYTES) {
    const levelByte = bytes[at + USER_ID_BYTES];
    const level: ShareLevel | undefined =
      levelByte === 1 ? 'read_only' : levelByte === 2 ? 'read_write' : undefined;
    if (level === undefined) throw bad(`unknown level ${levelByte}`);
    members.push({
      userId: text(at),
      level,
      signPublicKey: bytes.slice(at + USER_ID_BYTES + 1, at + USER_ID_BYTES + 1 + KEY_BYTES),
      boxPublicKey: bytes.slice(at + USER_ID_BYTES + 1 + KEY_BYTES, at + MEMBER_BYTES),
    });
  }
  const version = readU32(bytes, 1);
  if (version === 0) throw bad('version 0');
  return {
    version,
    previous: bytes.slice(OFFSET_PREVIOUS, OFFSET_DOC_HASH),
    docNameHash: bytes.slice(OFFSET_DOC_HASH, OFFSET_OWNER_KEY),
    ownerKey: bytes.slice(OFFSET_OWNER_KEY, OFFSET_OWNER_ID),
    ownerId: text(OFFSET_OWNER_ID),
    epoch: readU32(bytes, OFFSET_EPOCH),
    keyId: toHex(bytes.subarray(OFFSET_KEY_ID, OFFSET_COUNT)),
    members,
    hash: memberListHash(bytes),
  };
}

/**
 * Verifies one member list version: well formed (BadRequest), for `docName` and signed by
 * `ownerKey` (Forbidden otherwise). Requires `ready()`.
 */
export function verifyMemberList(bytes: Uint8Array, ownerKey: Uint8Array, docName: string): MemberList {
  const list = readMemberList(bytes);
  if (!bytesEqual(list.ownerKey, ownerKey)) {
    throw new SyncError('Forbidden', 'the member list is not signed by the owner key');
  }
  let valid = false;
  try {
    valid = sodium().crypto_sign_verify_detached(
      bytes.subarray(bytes.length - SIGNATURE_BYTES),
      concatBytes(SIGN_DOMAIN, bytes.subarray(0, bytes.length - SIGNATURE_BYTES)),
      ownerKey,
    );
  } catch {
    valid = false;
  }
  if (!valid) throw new SyncError('Forbidden', 'member list signature does not verify: altered or forged');
  if (!bytesEqual(list.docNameHash, docNameHash(docName))) {
    throw new SyncError('Forbidden', 'the member list is for another document');
  }
  return list;
}

/**
 * Checks that `next` may follow `previous` (or start a chain when undefined): version + 1,
 * chaining its hash, the same owner, and the document key either unchanged or moved one epoch
 * up to a new key id. The owner's signing key stays the same unless `handover` says the owner
 * rotated their identity from `previous`'s key to `next`'s (a verified rotation statement).
 * Forbidden otherwise.
 */
export function checkMemberListStep(
  previous: MemberList | undefined,
  next: MemberList,
  handover = false,
): void {
  if (previous === undefined) {
    if (next.version !== 1 || !bytesEqual(next.previous, new Uint8Array(HASH_BYTES))) {
      throw new SyncError('Forbidden', `member list version ${next.version} does not start a chain`);
    }
    return;
  }
  if (next.version !== previous.version + 1 || !bytesEqual(next.previous, previous.hash)) {
    throw new SyncError(
      'Forbidden',
      `member list version ${next.version} does not follow version ${previous.version}: the history was altered`,
    );
  }
  if ((!handover && !bytesEqual(next.ownerKey, previous.ownerKey)) || next.ownerId !== previous.ownerId) {
    throw new SyncError('Forbidden', 'the member list changed its owner');
  }
  const sameKey = next.epoch === previous.epoch && next.keyId === previous.keyId;
  const nextEpoch = next.epoch === previous.epoch + 1 && next.keyId !== previous.keyId;
  if (!sameKey && !nextEpoch) {
    throw new SyncError(
      'Forbidden',
      `member list version ${next.version} moves the key from epoch ${previous.epoch} to ${next.epoch}: only +1 steps to a new key`,
    );
  }
}

/**
 * Verifies a whole chain of member list versions, oldest first: every version signed for
 * `docName` by the owner and each a valid step from the one before. Returns them decoded.
 *
 * `ownerKey` is the owner's signing key, or the owner's key history oldest first (every key a
 * verified identity rotation retired, then the current one): a version may be signed by any key
 * of the history, but never by one older than the version before it used (a retired key does not
 * sign after its successor has).
 */
export function verifyMemberListChain(
  chain: readonly Uint8Array[],
  ownerKey: Uint8Array | readonly Uint8Array[],
  docName: string,
): MemberList[] {
  const keys = ownerKey instanceof Uint8Array ? [ownerKey] : ownerKey;
  const out: MemberList[] = [];
  let at = 0;
  for (const bytes of chain) {
    const signer = readMemberList(bytes).ownerKey;
    let index = -1;
    for (let i = at; i < keys.length; i++) {
      if (bytesEqual(keys[i] as Uint8Array, signer)) {
        index = i;
        break;
      }
    }
    if (index < 0) throw new SyncError('Forbidden', 'the member list is not signed by the owner key');
    const list = verifyMemberList(bytes, keys[index] as Uint8Array, docName);
    checkMemberListStep(out.at(-1), list, out.length > 0 && index > at);
    at = index;
    out.push(list);
  }
  return out;
}

/** The (epoch, key id) pairs a chain makes valid, as `epoch:keyId` strings. */
export function memberListKeys(chain: readonly MemberList[]): Set<string> {
  return new Set(chain.map((list) => `${list.epoch}:${list.keyId}`));
}
