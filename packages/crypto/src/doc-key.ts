import { SyncError } from '@scopesync/core';
import { checkLength, checkU32 } from './bytes.ts';
import { sodium } from './sodium.ts';

/** Bytes in a document key (an XChaCha20-Poly1305 key). */
export const DOC_KEY_BYTES = 32;
/** Bytes in a key id on the wire; in the API it is twice as many lowercase hex characters. */
export const KEY_ID_BYTES = 16;
/** The epoch of a document's first key. */
export const FIRST_EPOCH = 1;

const KEY_ID = /^[0-9a-f]{32}$/;

/** A document key: the secret that seals a document's envelopes, named by key id and epoch. */
export interface DocKey {
  /** 32 lowercase hex characters (16 random bytes) naming the key within its document. */
  readonly id: string;
  /** Rotation counter: {@link FIRST_EPOCH} for a document's first key, +1 at each rotation. */
  readonly epoch: number;
  /** The 32-byte key. Secret. */
  readonly bytes: Uint8Array;
}

/** True when `value` is a well-formed key id (32 lowercase hex characters). */
export function isKeyId(value: unknown): value is string {
  return typeof value === 'string' && KEY_ID.test(value);
}

/** Throws BadRequest unless `key` is a well-formed {@link DocKey}; returns it. */
export function checkDocKey(key: DocKey): DocKey {
  if (typeof key !== 'object' || key === null) throw new SyncError('BadRequest', 'document key is missing');
  if (!isKeyId(key.id)) throw new SyncError('BadRequest', 'key id must be 32 lowercase hex characters');
  checkU32(key.epoch, 'key epoch');
  checkLength(key.bytes, DOC_KEY_BYTES, 'document key');
  return key;
}

/** A fresh random document key with a fresh key id, at `epoch` (default {@link FIRST_EPOCH}). Requires `ready()`. */
export function createDocKey(epoch: number = FIRST_EPOCH): DocKey {
  checkU32(epoch, 'key epoch');
  const s = sodium();
  return { id: s.to_hex(s.randombytes_buf(KEY_ID_BYTES)), epoch, bytes: s.randombytes_buf(DOC_KEY_BYTES) };
}

/**
 * The key that replaces `current` after a member is removed: fresh random bytes and id, epoch + 1.
 * Envelopes sealed under it cannot be opened with any earlier key. Requires `ready()`.
 */
export function rotateDocKey(current: DocKey): DocKey {
  checkDocKey(current);
  if (current.epoch >= 0xffff_ffff) throw new SyncError('Conflict', 'key epoch cannot grow past 4294967295');
  return createDocKey(current.epoch + 1);
}
