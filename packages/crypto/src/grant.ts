import { isShareLevel, parseBlobId, type ShareLevel, SyncError } from '@scopesync/core';
import { bytesEqual, checkLength, concatBytes, fromHex, readU32, toHex, utf8, writeU32 } from './bytes.ts';
import { checkDocKey, DOC_KEY_BYTES, type DocKey, KEY_ID_BYTES } from './doc-key.ts';
import { sodium } from './sodium.ts';

// Sharing an encrypted blob hands the sharee two things:
//
// sealed key = crypto_box_seal(version 1 ‖ epoch u32 ‖ key id 16 ‖ key 32, recipient X25519 key)
//   Anonymous by construction: anyone can seal anything to anyone. What makes it trustworthy is…
//
// grant, version 1, signed by the grantor (all integers big-endian):
//   0      1    version = 1
//   1      1    level: 1 read_only, 2 read_write
//   2      4    epoch (u32)
//   6      16   key id
//   22     32   grantor Ed25519 public key
//   54     32   recipient X25519 public key
//   86     32   BLAKE2b-256("scopesync:sealed-key:v1\0" ‖ sealed key)
//   118    2    B = blob id length (u16)
//   120    B    blob id (ASCII)
//   120+B  64   Ed25519 signature over "scopesync:grant:v1\0" ‖ bytes[0, 120+B)
//
// …the grant: it names the blob, the level, the key and the recipient, and pins the exact sealed
// key by hash, so a sealed key from anyone else is refused. The relay stores both and can verify
// the grant's signature; it cannot open the sealed key.

const VERSION = 1;
const LEVEL_BYTE: Record<ShareLevel, number> = { read_only: 1, read_write: 2 };
const LEVEL_OF_BYTE: ReadonlyMap<number, ShareLevel> = new Map([
  [1, 'read_only'],
  [2, 'read_write'],
]);
const PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;
const HASH_BYTES = 32;
const OFFSET_KEY_ID = 6;
const OFFSET_GRANTOR = OFFSET_KEY_ID + KEY_ID_BYTES;
const OFFSET_RECIPIENT = OFFSET_GRANTOR + PUBLIC_KEY_BYTES;
const OFFSET_SEALED_HASH = OFFSET_RECIPIENT + PUBLIC_KEY_BYTES;
const OFFSET_BLOB_ID_LENGTH = OFFSET_SEALED_HASH + HASH_BYTES;
const OFFSET_BLOB_ID = OFFSET_BLOB_ID_LENGTH + 2;
const SEALED_PLAINTEXT_BYTES = 1 + 4 + KEY_ID_BYTES + DOC_KEY_BYTES;

const SIGN_DOMAIN = utf8('scopesync:grant:v1\0');
const SEALED_KEY_DOMAIN = utf8('scopesync:sealed-key:v1\0');

/** Input of {@link sealGrant}. */
export interface SealGrantOptions {
  /** The blob's current document key; its epoch is the grant's epoch. */
  readonly docKey: DocKey;
  /** The sharee's X25519 public key, as published by the relay (`GET /users/<id>/keys`). */
  readonly recipientBoxPublicKey: Uint8Array;
  /** The grantor's Ed25519 key pair (an `Identity` fits). */
  readonly grantor: { readonly signSecretKey: Uint8Array; readonly signPublicKey: Uint8Array };
  readonly blobId: string;
  readonly level: ShareLevel;
}

/** What {@link sealGrant} produces: both go to the relay next to the share record. */
export interface SealedGrant {
  /** The document key sealed to the recipient's box key; only the recipient can open it. */
  readonly sealedKey: Uint8Array;
  /** The grantor-signed statement tying that sealed key to the blob, level, epoch and recipient. */
  readonly grant: Uint8Array;
}

/** The public content of a grant. */
export interface GrantInfo {
  readonly version: number;
  readonly level: ShareLevel;
  readonly epoch: number;
  /** Key id of the sealed document key, 32 lowercase hex characters. */
  readonly keyId: string;
  readonly blobId: string;
  readonly grantorKey: Uint8Array;
  readonly recipientBoxPublicKey: Uint8Array;
  readonly sealedKeyHash: Uint8Array;
}

/** Input of {@link openGrant}. */
export interface OpenGrantOptions {
  readonly grant: Uint8Array;
  readonly sealedKey: Uint8Array;
  /** The recipient's X25519 key pair (an `Identity` fits). */
  readonly recipient: { readonly boxPublicKey: Uint8Array; readonly boxSecretKey: Uint8Array };
  /** Whether this Ed25519 key may grant access to the blob: the owner's key, or a read_write sharee's. */
  readonly isGrantorAllowed: (grantorKey: Uint8Array) => boolean;
  /** When given, the grant must be for this blob. */
  readonly blobId?: string;
}

/** What {@link openGrant} found in a verified grant. */
export interface OpenedGrant {
  readonly docKey: DocKey;
  readonly level: ShareLevel;
  readonly blobId: string;
  readonly epoch: number;
  readonly grantorKey: Uint8Array;
}

function bad(message: string): SyncError {
  return new SyncError('BadRequest', `malformed grant: ${message}`);
}

function forbidden(message: string): SyncError {
  return new SyncError('Forbidden', message);
}

function sealedKeyHash(sealedKey: Uint8Array): Uint8Array {
  return sodium().crypto_generichash(HASH_BYTES, concatBytes(SEALED_KEY_DOMAIN, sealedKey), null);
}

/**
 * Seals `docKey` to the recipient (crypto_box_seal) and signs a grant for `blobId` at `level`. The
 * caller stores both with the share. BadRequest for malformed input. Requires `ready()`.
 */
export function sealGrant(options: SealGrantOptions): SealedGrant {
  const { docKey, recipientBoxPublicKey, grantor, blobId, level } = options;
  checkDocKey(docKey);
  checkLength(recipientBoxPublicKey, PUBLIC_KEY_BYTES, 'recipient box public key');
  checkLength(grantor.signPublicKey, PUBLIC_KEY_BYTES, 'grantor signing public key');
  checkLength(grantor.signSecretKey, 64, 'grantor signing secret key');
  if (!bytesEqual(grantor.signSecretKey.subarray(32), grantor.signPublicKey)) {
    throw new SyncError('BadRequest', 'grantor signing secret key does not match the public key');
  }
  if (!isShareLevel(level)) throw new SyncError('BadRequest', 'level must be read_only or read_write');
  const blob = utf8(parseBlobId(blobId));
  const s = sodium();
  const keyId = fromHex(docKey.id, 'key id');

  const inner = new Uint8Array(SEALED_PLAINTEXT_BYTES);
  inner[0] = VERSION;
  writeU32(inner, 1, docKey.epoch);
  inner.set(keyId, 5);
  inner.set(docKey.bytes, 5 + KEY_ID_BYTES);
  const sealedKey = s.crypto_box_seal(inner, recipientBoxPublicKey);
  s.memzero(inner);

  const body = new Uint8Array(OFFSET_BLOB_ID + blob.length);
  body[0] = VERSION;
  body[1] = LEVEL_BYTE[level];
  writeU32(body, 2, docKey.epoch);
  body.set(keyId, OFFSET_KEY_ID);
  body.set(grantor.signPublicKey, OFFSET_GRANTOR);
  body.set(recipientBoxPublicKey, OFFSET_RECIPIENT);
  body.set(sealedKeyHash(sealedKey), OFFSET_SEALED_HASH);
  new DataView(body.buffer).setUint16(OFFSET_BLOB_ID_LENGTH, blob.length, false);
  body.set(blob, OFFSET_BLOB_ID);
  const signature = s.crypto_sign_detached(concatBytes(SIGN_DOMAIN, body), grantor.signSecretKey);
  return { sealedKey, grant: concatBytes(body, signature) };
}

/** Reads a grant without verifying its signature. BadRequest when the bytes are not a well-formed grant. */
export function readGrant(bytes: Uint8Array): GrantInfo {
  if (!(bytes instanceof Uint8Array)) throw bad('not bytes');
  if (bytes.length < OFFSET_BLOB_ID + SIGNATURE_BYTES) throw bad('truncated');
  if (bytes[0] !== VERSION) throw bad(`unsupported version ${bytes[0]}`);
  const level = LEVEL_OF_BYTE.get(bytes[1] as number);
  if (level === undefined) throw bad(`unknown level ${bytes[1]}`);
  const blobLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(
    OFFSET_BLOB_ID_LENGTH,
    false,
  );
  if (bytes.length !== OFFSET_BLOB_ID + blobLength + SIGNATURE_BYTES) throw bad('length does not match');
  let blobId: string;
  try {
    blobId = parseBlobId(String.fromCharCode(...bytes.subarray(OFFSET_BLOB_ID, OFFSET_BLOB_ID + blobLength)));
  } catch (cause) {
    throw new SyncError('BadRequest', 'malformed grant: bad blob id', { cause });
  }
  return {
    version: VERSION,
    level,
    epoch: readU32(bytes, 2),
    keyId: toHex(bytes.subarray(OFFSET_KEY_ID, OFFSET_GRANTOR)),
    blobId,
    grantorKey: bytes.slice(OFFSET_GRANTOR, OFFSET_RECIPIENT),
    recipientBoxPublicKey: bytes.slice(OFFSET_RECIPIENT, OFFSET_SEALED_HASH),
    sealedKeyHash: bytes.slice(OFFSET_SEALED_HASH, OFFSET_BLOB_ID_LENGTH),
  };
}

function checkGrantSignature(bytes: Uint8Array, info: GrantInfo): void {
  const signatureStart = bytes.length - SIGNATURE_BYTES;
  let valid = false;
  try {
    valid = sodium().crypto_sign_verify_detached(
      bytes.subarray(signatureStart),
      concatBytes(SIGN_DOMAIN, bytes.subarray(0, signatureStart)),
      info.grantorKey,
    );
  } catch {
    valid = false;
  }
  if (!valid) throw forbidden('grant signature does not verify: altered or forged');
}

/**
 * Checks a grant without opening anything (what the relay can do): well-formed (else BadRequest),
 * signed by its grantor key (else Forbidden), and that key among `allowed` (else Forbidden). Returns
 * the verified content. Requires `ready()`.
 */
export function verifyGrantSignature(
  bytes: Uint8Array,
  allowed: Iterable<Uint8Array> | ((grantorKey: Uint8Array) => boolean),
): GrantInfo {
  const info = readGrant(bytes);
  checkGrantSignature(bytes, info);
  let ok = false;
  if (typeof allowed === 'function') ok = allowed(info.grantorKey);
  else for (const key of allowed) if (bytesEqual(key, info.grantorKey)) ok = true;
  if (!ok) throw forbidden('grantor is not allowed to share this blob');
  return info;
}

/**
 * Opens a grant as its recipient: verifies the grantor's signature and standing, that it names this
 * recipient (and `blobId` when given), that it pins this very sealed key, then opens the key. Every
 * failure past parsing is Forbidden; malformed bytes are BadRequest. Requires `ready()`.
 */
export function openGrant(options: OpenGrantOptions): OpenedGrant {
  const { grant, sealedKey, recipient } = options;
  checkLength(recipient.boxPublicKey, PUBLIC_KEY_BYTES, 'recipient box public key');
  checkLength(recipient.boxSecretKey, 32, 'recipient box secret key');
  if (!(sealedKey instanceof Uint8Array)) throw new SyncError('BadRequest', 'sealed key must be bytes');
  const info = readGrant(grant);
  checkGrantSignature(grant, info);
  if (!options.isGrantorAllowed(info.grantorKey))
    throw forbidden('grantor is not allowed to share this blob');
  if (options.blobId !== undefined && options.blobId !== info.blobId) {
    throw forbidden('grant is for another blob');
  }
  if (!bytesEqual(info.recipientBoxPublicKey, recipient.boxPublicKey)) {
    throw forbidden('grant is for another recipient');
  }
  if (!bytesEqual(sealedKeyHash(sealedKey), info.sealedKeyHash)) {
    throw forbidden('sealed key is not the one the grant was signed for');
  }
  const s = sodium();
  let inner: Uint8Array;
  try {
    inner = s.crypto_box_seal_open(sealedKey, recipient.boxPublicKey, recipient.boxSecretKey);
  } catch (cause) {
    throw new SyncError('Forbidden', 'sealed key does not open with this box key', { cause });
  }
  if (
    inner.length !== SEALED_PLAINTEXT_BYTES ||
    inner[0] !== VERSION ||
    readU32(inner, 1) !== info.epoch ||
    toHex(inner.subarray(5, 5 + KEY_ID_BYTES)) !== info.keyId
  ) {
    s.memzero(inner);
    throw forbidden('sealed key does not match the grant');
  }
  const docKey: DocKey = { id: info.keyId, epoch: info.epoch, bytes: inner.slice(5 + KEY_ID_BYTES) };
  s.memzero(inner);
  return { docKey, level: info.level, blobId: info.blobId, epoch: info.epoch, grantorKey: info.grantorKey };
}
