import { isUserId, parseDocName, SyncError, type UserId } from '@scopesync/core';
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
import { checkDocKey, type DocKey, KEY_ID_BYTES } from './doc-key.ts';
import { DOC_NAME_HASH_BYTES, docNameHash } from './doc-name-hash.ts';
import {
  decodeClock,
  ENVELOPE_HASH_BYTES,
  encodeClock,
  STREAM_ID_BYTES,
  type StreamHead,
} from './history-clock.ts';
import { padPlaintext, unpadPlaintext } from './padding.ts';
import { sodium } from './sodium.ts';

// Envelope layout, version 2 (all integers big-endian):
//
//   off     size  field
//   0       1     version = 2
//   1       1     kind: 1 update (a Yjs log entry), 2 snapshot, 3 raw blob bytes
//   2       4     epoch (u32)
//   6       16    key id
//   22      32    doc name hash = BLAKE2b-256("scopesync:doc-name:v1\0" ‖ doc name)
//   54      32    author Ed25519 public key
//   86      8     stream id (random per device and document; zeros: unchained)
//   94      4     counter within the stream (1, 2, …; 0: unchained)
//   98      32    hash of the stream's previous envelope (zeros for counter 1): envelopeHash()
//   130     4     blob version (raw bytes: the version this write makes, 0 when unknown; else 0)
//   134     1     L = user id length: 0 (absent) or 21
//   135     L     user id, ASCII `user_` + 16 hex
//   135+L   4     X = commitments length (0 unless a snapshot that carries them)
//   139+L   X     commitments: parent snapshot hash (32) ‖ clock it covers (history-clock.ts)
//   139+L+X 4     C = ciphertext length (u32) = padded body length + 16
//   +4      24    nonce (random)
//   +24     C     XChaCha20-Poly1305-IETF ciphertext ‖ tag; AD = bytes[0, nonce) ‖ doc name
//                 of the body: plaintext ‖ 0x80 ‖ zeros, padded to a bucket (padding.ts), so the
//                 relay learns an edit's size only to within its bucket
//   end-64  64    Ed25519 signature over "scopesync:envelope:v2\0" ‖ bytes[0, end-64)
//
// The signature covers everything before it, so the relay (which holds no key that opens the
// ciphertext) can check who wrote an envelope; the AD binds the ciphertext to the header (kind,
// blob version and history included: raw bytes cannot pass as a log entry or the other way round)
// and the full doc name. The explicit lengths make truncation a format error, not a bad signature.

/** The layout version this module writes and reads. */
export const ENVELOPE_VERSION = 2;

/** What an envelope holds: an incremental Yjs update, a snapshot (a state update replacing earlier entries), or raw blob bytes. */
export type EnvelopeKind = 'update' | 'snapshot' | 'raw';

const KIND_BYTE: Record<EnvelopeKind, number> = { update: 1, snapshot: 2, raw: 3 };
const KIND_OF_BYTE: ReadonlyMap<number, EnvelopeKind> = new Map([
  [1, 'update'],
  [2, 'snapshot'],
  [3, 'raw'],
]);

const PUBLIC_KEY_BYTES = 32;
const SECRET_KEY_BYTES = 64;
const SIGNATURE_BYTES = 64;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const USER_ID_BYTES = 21;
const OFFSET_EPOCH = 2;
const OFFSET_KEY_ID = 6;
const OFFSET_DOC_HASH = OFFSET_KEY_ID + KEY_ID_BYTES;
const OFFSET_AUTHOR = OFFSET_DOC_HASH + DOC_NAME_HASH_BYTES;
const OFFSET_STREAM = OFFSET_AUTHOR + PUBLIC_KEY_BYTES;
const OFFSET_COUNTER = OFFSET_STREAM + STREAM_ID_BYTES;
const OFFSET_PREVIOUS = OFFSET_COUNTER + 4;
const OFFSET_BLOB_VERSION = OFFSET_PREVIOUS + ENVELOPE_HASH_BYTES;
const OFFSET_USER_ID_LENGTH = OFFSET_BLOB_VERSION + 4;
const FIXED_HEADER_BYTES = OFFSET_USER_ID_LENGTH + 1 + 4 + 4;

/** Bytes an envelope adds to its padded body (`paddedLength(plaintext length + 1)`) when it carries no user id (21 more when it does) and no commitments. */
export const ENVELOPE_OVERHEAD = FIXED_HEADER_BYTES + NONCE_BYTES + TAG_BYTES + SIGNATURE_BYTES;

const SIGN_DOMAIN = utf8('scopesync:envelope:v2\0');
const NO_HASH = new Uint8Array(ENVELOPE_HASH_BYTES);

/** Where an envelope stands in its author's history: see history-clock.ts. */
export interface EnvelopeChain {
  /** The stream id, 16 hex characters, random per device and document. */
  readonly stream: string;
  /** 1 for the stream's first envelope, then +1 each. */
  readonly counter: number;
  /** {@link envelopeHash} of the stream's previous envelope; 32 zero bytes for counter 1. */
  readonly previous: Uint8Array;
}

/** What a snapshot commits to: the snapshot it replaces and the per-stream heads it covers. */
export interface SnapshotCommitments {
  /** {@link envelopeHash} of the parent snapshot; 32 zero bytes for the first. */
  readonly parent: Uint8Array;
  readonly clock: readonly StreamHead[];
}

/** Who seals an envelope: an Ed25519 key pair (an `Identity` fits), and optionally the user id. */
export interface EnvelopeAuthor {
  /** Carried in the header so the relay and readers can attribute the envelope without a key lookup. */
  readonly userId?: string;
  readonly signSecretKey: Uint8Array;
  readonly signPublicKey: Uint8Array;
}

/** Input of {@link sealEnvelope}. */
export interface SealEnvelopeOptions {
  /** The document the envelope belongs to (a valid doc name); bound into the AD and the header hash. */
  readonly docName: string;
  /** The document key to seal under; its id and epoch go into the header. */
  readonly key: DocKey;
  readonly author: EnvelopeAuthor;
  /** Default `'update'`. */
  readonly kind?: EnvelopeKind;
  readonly plaintext: Uint8Array;
  /** The author's history position; default unchained (stream and counter 0). */
  readonly chain?: EnvelopeChain;
  /** Raw bytes: the blob version this write makes (readers compare it with the relay's); default 0. */
  readonly blobVersion?: number;
  /** Snapshots only: what it replaces and covers. */
  readonly commitments?: SnapshotCommitments;
}

/** The public part of an envelope, readable without any key. */
export interface EnvelopeHeader {
  readonly version: number;
  readonly kind: EnvelopeKind;
  readonly epoch: number;
  /** The document key id, 32 lowercase hex characters. */
  readonly keyId: string;
  /** BLAKE2b-256 of the doc name; compare with {@link docNameHash}. */
  readonly docNameHash: Uint8Array;
  /** The author's Ed25519 public key (not yet verified by {@link readEnvelopeHeader}). */
  readonly authorKey: Uint8Array;
  /** The author's user id, when the author put one in. */
  readonly userId?: UserId;
  /** Bytes of ciphertext including the 16-byte tag: the plaintext is 16 bytes shorter. */
  readonly ciphertextLength: number;
  /** The author's history position (counter 0: unchained). */
  readonly chain: EnvelopeChain;
  /** Raw bytes: the blob version the author wrote; 0 when unknown or not raw. */
  readonly blobVersion: number;
  /** A snapshot's commitments, when it carries them. */
  readonly commitments?: SnapshotCommitments;
}

/** Decides whether a (signature-verified) author may write the document: a list of keys or a predicate. */
export type AllowedAuthors =
  | Iterable<Uint8Array>
  | ((authorKey: Uint8Array, userId: UserId | undefined) => boolean);

/** Options of {@link verifyEnvelopeSignature}. */
export interface VerifyEnvelopeOptions {
  /** When given, the envelope must have been sealed for this document (Forbidden otherwise). */
  readonly docName?: string;
  /** When given, an envelope under an older epoch is refused with Conflict. */
  readonly minEpoch?: number;
}

/** Options of {@link openEnvelope}. */
export interface OpenEnvelopeOptions {
  /** The document the envelope is being read for. An envelope sealed for another document is refused. */
  readonly docName: string;
  /** Finds the document key with this id and epoch, or undefined when this reader does not have it. */
  readonly keys: (keyId: string, epoch: number) => DocKey | undefined;
  /** Who may write this document: the owner's key for a private doc, the members' keys for a shared blob. */
  readonly isAuthorAllowed: (authorKey: Uint8Array, userId: UserId | undefined) => boolean;
  /** Refuse envelopes under an older epoch (Conflict), e.g. after a rotation that removed a member. */
  readonly minEpoch?: number;
}

/** What {@link openEnvelope} found inside a verified envelope. */
export interface OpenedEnvelope {
  readonly plaintext: Uint8Array;
  readonly kind: EnvelopeKind;
  readonly keyId: string;
  readonly epoch: number;
  /** The author's Ed25519 public key, verified and allowed. */
  readonly authorKey: Uint8Array;
  readonly userId?: UserId;
  /** The verified header. */
  readonly header: EnvelopeHeader;
}

interface Parsed {
  readonly header: EnvelopeHeader;
  /** End of the header covered by the AD; the nonce starts here. */
  readonly nonceStart: number;
  readonly signatureStart: number;
}

function bad(message: string): SyncError {
  return new SyncError('BadRequest', `malformed envelope: ${message}`);
}

function parse(bytes: Uint8Array): Parsed {
  if (!(bytes instanceof Uint8Array)) throw bad('not bytes');
  if (bytes.length < 1) throw bad('empty');
  if (bytes[0] !== ENVELOPE_VERSION) throw bad(`unsupported version ${bytes[0]}`);
  if (bytes.length < ENVELOPE_OVERHEAD) throw bad(`${bytes.length} bytes is shorter than any envelope`);
  const kind = KIND_OF_BYTE.get(bytes[1] as number);
  if (kind === undefined) throw bad(`unknown kind ${bytes[1]}`);
  const userIdLength = bytes[OFFSET_USER_ID_LENGTH] as number;
  if (userIdLength !== 0 && userIdLength !== USER_ID_BYTES) throw bad('bad user id length');
  const commitmentsAt = OFFSET_USER_ID_LENGTH + 1 + userIdLength;
  if (bytes.length < commitmentsAt + 4) throw bad('truncated header');
  const commitmentsLength = readU32(bytes, commitmentsAt);
  const lengthAt = commitmentsAt + 4 + commitmentsLength;
  if (bytes.length < lengthAt + 4) throw bad('truncated header');
  const ciphertextLength = readU32(bytes, lengthAt);
  const nonceStart = lengthAt + 4;
  const signatureStart = nonceStart + NONCE_BYTES + ciphertextLength;
  if (ciphertextLength < TAG_BYTES) throw bad('ciphertext shorter than its tag');
  if (bytes.length < signatureStart + SIGNATURE_BYTES) throw bad('truncated');
  if (bytes.length > signatureStart + SIGNATURE_BYTES) throw bad('trailing bytes after the signature');
  let userId: UserId | undefined;
  if (userIdLength > 0) {
    const text = String.fromCharCode(...bytes.subarray(OFFSET_USER_ID_LENGTH + 1, commitmentsAt));
    if (!isUserId(text)) throw bad('bad user id');
    userId = text;
  }
  let commitments: SnapshotCommitments | undefined;
  if (commitmentsLength > 0) {
    if (kind !== 'snapshot') throw bad('only snapshots carry commitments');
    const start = commitmentsAt + 4;
    if (commitmentsLength < ENVELOPE_HASH_BYTES + 4) throw bad('commitments too short');
    const section = bytes.subarray(start, lengthAt);
    const { heads, end } = decodeClock(section, ENVELOPE_HASH_BYTES);
    if (end !== section.length) throw bad('commitments length does not match');
    commitments = { parent: section.slice(0, ENVELOPE_HASH_BYTES), clock: heads };
  }
  const header: EnvelopeHeader = {
    version: ENVELOPE_VERSION,
    kind,
    epoch: readU32(bytes, OFFSET_EPOCH),
    keyId: toHex(bytes.subarray(OFFSET_KEY_ID, OFFSET_DOC_HASH)),
    docNameHash: bytes.slice(OFFSET_DOC_HASH, OFFSET_AUTHOR),
    authorKey: bytes.slice(OFFSET_AUTHOR, OFFSET_STREAM),
    ciphertextLength,
    chain: {
      stream: toHex(bytes.subarray(OFFSET_STREAM, OFFSET_COUNTER)),
      counter: readU32(bytes, OFFSET_COUNTER),
      previous: bytes.slice(OFFSET_PREVIOUS, OFFSET_BLOB_VERSION),
    },
    blobVersion: readU32(bytes, OFFSET_BLOB_VERSION),
    ...(userId === undefined ? {} : { userId }),
    ...(commitments === undefined ? {} : { commitments }),
  };
  return { header, nonceStart, signatureStart };
}

function additionalData(bytes: Uint8Array, parsed: Parsed, docName: string): Uint8Array {
  return concatBytes(bytes.subarray(0, parsed.nonceStart), utf8(docName));
}

function checkSignature(bytes: Uint8Array, parsed: Parsed): void {
  const message = concatBytes(SIGN_DOMAIN, bytes.subarray(0, parsed.signatureStart));
  let valid = false;
  try {
    valid = sodium().crypto_sign_verify_detached(
      bytes.subarray(parsed.signatureStart),
      message,
      parsed.header.authorKey,
    );
  } catch {
    // libsodium throws on keys it cannot even decode; to a reader that is just a bad signature.
    valid = false;
  }
  if (!valid) throw new SyncError('Forbidden', 'envelope signature does not verify: altered or forged');
}

function checkDocName(parsed: Parsed, docName: string): void {
  if (!bytesEqual(parsed.header.docNameHash, docNameHash(docName))) {
    throw new SyncError('Forbidden', 'envelope was sealed for another document');
  }
}

function checkEpoch(parsed: Parsed, minEpoch: number | undefined): void {
  if (minEpoch !== undefined && parsed.header.epoch < minEpoch) {
    throw new SyncError(
      'Conflict',
      `envelope is under key epoch ${parsed.header.epoch}, older than the required ${minEpoch}`,
    );
  }
}

function isAllowed(allowed: AllowedAuthors, header: EnvelopeHeader): boolean {
  if (typeof allowed === 'function') return allowed(header.authorKey, header.userId);
  for (const key of allowed) if (bytesEqual(key, header.authorKey)) return true;
  return false;
}

/**
 * Seals `plaintext` for `docName` under `key` and signs it as `author`: XChaCha20-Poly1305-IETF with
 * a random nonce, AD = header (kind, epoch, key id, doc name hash, author, history, blob version) ‖ doc name, then Ed25519
 * over the whole. BadRequest for malformed input (a bad doc name, key, user id, or a secret key that
 * does not belong to the public key). Requires `ready()`.
 */
export function sealEnvelope(options: SealEnvelopeOptions): Uint8Array {
  const { docName, key, author, kind = 'update', plaintext } = options;
  parseDocName(docName);
  checkDocKey(key);
  if (!(plaintext instanceof Uint8Array)) throw new SyncError('BadRequest', 'plaintext must be bytes');
  const kindByte = KIND_BYTE[kind];
  if (kindByte === undefined) throw new SyncError('BadRequest', `unknown envelope kind ${String(kind)}`);
  checkLength(author.signPublicKey, PUBLIC_KEY_BYTES, 'author signing public key');
  checkLength(author.signSecretKey, SECRET_KEY_BYTES, 'author signing secret key');
  // libsodium's Ed25519 secret key ends with its public key: a mismatched pair would sign envelopes
  // that every reader refuses, so catch it here where the mistake is made.
  if (!bytesEqual(author.signSecretKey.subarray(32), author.signPublicKey)) {
    throw new SyncError('BadRequest', 'author signing secret key does not match the public key');
  }
  if (author.userId !== undefined && !isUserId(author.userId)) {
    throw new SyncError(
      'BadRequest',
      'author user id must be "user_" followed by 16 lowercase hex characters',
    );
  }
  const chain = options.chain ?? { stream: '0'.repeat(16), counter: 0, previous: NO_HASH };
  checkU32(chain.counter, 'counter');
  checkLength(chain.previous, ENVELOPE_HASH_BYTES, 'previous envelope hash');
  const stream = checkLength(fromHex(chain.stream, 'stream id'), STREAM_ID_BYTES, 'stream id');
  const blobVersion = checkU32(options.blobVersion ?? 0, 'blob version');
  if (options.commitments !== undefined && kind !== 'snapshot') {
    throw new SyncError('BadRequest', 'only snapshots carry commitments');
  }
  const commitments =
    options.commitments === undefined
      ? new Uint8Array(0)
      : concatBytes(
          checkLength(options.commitments.parent, ENVELOPE_HASH_BYTES, 'parent snapshot hash'),
          encodeClock(options.commitments.clock),
        );
  const s = sodium();
  const userId = author.userId === undefined ? new Uint8Array(0) : utf8(author.userId);
  const header = new Uint8Array(FIXED_HEADER_BYTES + userId.length + commitments.length);
  header[0] = ENVELOPE_VERSION;
  header[1] = kindByte;
  writeU32(header, OFFSET_EPOCH, key.epoch);
  header.set(fromHex(key.id, 'key id'), OFFSET_KEY_ID);
  header.set(docNameHash(docName), OFFSET_DOC_HASH);
  header.set(author.signPublicKey, OFFSET_AUTHOR);
  header.set(stream, OFFSET_STREAM);
  writeU32(header, OFFSET_COUNTER, chain.counter);
  header.set(chain.previous, OFFSET_PREVIOUS);
  writeU32(header, OFFSET_BLOB_VERSION, blobVersion);
  header[OFFSET_USER_ID_LENGTH] = userId.length;
  header.set(userId, OFFSET_USER_ID_LENGTH + 1);
  const commitmentsAt = OFFSET_USER_ID_LENGTH + 1 + userId.length;
  writeU32(header, commitmentsAt, commitments.length);
  header.set(commitments, commitmentsAt + 4);
  const body = padPlaintext(plaintext);
  writeU32(header, commitmentsAt + 4 + commitments.length, body.length + TAG_BYTES);
  const nonce = s.randombytes_buf(NONCE_BYTES);
  const ciphertext = s.crypto_aead_xchacha20poly1305_ietf_encrypt(
    body,
    concatBytes(header, utf8(docName)),
    null,
    nonce,
    key.bytes,
  );
  const signed = concatBytes(header, nonce, ciphertext);
  const signature = s.crypto_sign_detached(concatBytes(SIGN_DOMAIN, signed), author.signSecretKey);
  return concatBytes(signed, signature);
}

/**
 * Reads an envelope's header without verifying or decrypting anything (the relay's and the client's
 * routing look). BadRequest when the bytes are not a well-formed envelope.
 */
export function readEnvelopeHeader(bytes: Uint8Array): EnvelopeHeader {
  return parse(bytes).header;
}

/**
 * Checks an envelope the way the relay can, without any document key: well-formed (else BadRequest),
 * signed by its author key (else Forbidden), the author among `allowed` (else Forbidden), and, when
 * the options ask, sealed for `docName` (else Forbidden) under an epoch ≥ `minEpoch` (else Conflict).
 * Returns the verified header. Requires `ready()`.
 */
export function verifyEnvelopeSignature(
  bytes: Uint8Array,
  allowed: AllowedAuthors,
  options: VerifyEnvelopeOptions = {},
): EnvelopeHeader {
  const parsed = parse(bytes);
  checkSignature(bytes, parsed);
  if (options.docName !== undefined) checkDocName(parsed, options.docName);
  if (!isAllowed(allowed, parsed.header)) {
    throw new SyncError('Forbidden', 'envelope author is not allowed to write this document');
  }
  checkEpoch(parsed, options.minEpoch);
  return parsed.header;
}

/**
 * Verifies and opens an envelope for `docName`. Refuses, in this order: malformed bytes (BadRequest),
 * a bad signature — any flipped bit (Forbidden), an envelope sealed for another document (Forbidden),
 * an author `isAuthorAllowed` rejects (Forbidden), an epoch below `minEpoch` (Conflict), a key id and
 * epoch `keys` does not know (NotFound: fetch the key, then retry), a ciphertext that does not open
 * under that key (Forbidden). Requires `ready()`.
 */
export function openEnvelope(bytes: Uint8Array, options: OpenEnvelopeOptions): OpenedEnvelope {
  const parsed = parse(bytes);
  const { header } = parsed;
  checkSignature(bytes, parsed);
  checkDocName(parsed, options.docName);
  if (!options.isAuthorAllowed(header.authorKey, header.userId)) {
    throw new SyncError('Forbidden', 'envelope author is not allowed to write this document');
  }
  checkEpoch(parsed, options.minEpoch);
  const key = options.keys(header.keyId, header.epoch);
  if (key === undefined) {
    throw new SyncError('NotFound', `no document key ${header.keyId} at epoch ${header.epoch}`);
  }
  let plaintext: Uint8Array;
  try {
    plaintext = sodium().crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      bytes.subarray(parsed.nonceStart + NONCE_BYTES, parsed.signatureStart),
      additionalData(bytes, parsed, options.docName),
      bytes.subarray(parsed.nonceStart, parsed.nonceStart + NONCE_BYTES),
      key.bytes,
    );
  } catch (cause) {
    throw new SyncError('Forbidden', 'envelope does not decrypt under its document key', { cause });
  }
  return {
    // Inside the authenticated ciphertext: a malformed padding was sealed so by the author.
    plaintext: unpadPlaintext(plaintext),
    kind: header.kind,
    keyId: header.keyId,
    epoch: header.epoch,
    authorKey: header.authorKey,
    ...(header.userId === undefined ? {} : { userId: header.userId }),
    header,
  };
}
