import { SyncError } from '@scopesync/core';

// Length padding of envelope bodies, so the relay (which sees ciphertext lengths) learns the
// size of an edit only to within a bucket. ISO/IEC 7816-4 style: the body is the plaintext,
// one 0x80 byte, then zeros up to the bucket, so unpadding is unambiguous for any plaintext.
// Buckets: at least MIN_BUCKET bytes (a keystroke and a pasted word look the same), then Padmé
// (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and Communication with
// PURBs", PETS 2019): a length L is rounded up so that only about log2(log2 L) + 1 of its
// highest bits stay significant. That leaks O(log log L) bits with at most ~12% overhead.

/** The smallest padded body, bytes. */
export const MIN_PADDED_BYTES = 64;

const MARKER = 0x80;

/** The bucket a body of `length` bytes (plaintext plus the marker byte) is padded to. */
export function paddedLength(length: number): number {
  if (!Number.isSafeInteger(length) || length < 0)
    throw new SyncError('BadRequest', 'length must be a non-negative integer');
  if (length <= MIN_PADDED_BYTES) return MIN_PADDED_BYTES;
  const e = Math.floor(Math.log2(length));
  const s = Math.floor(Math.log2(e)) + 1;
  const lastBits = e - s;
  const mask = 2 ** lastBits - 1;
  // (length + mask) & ~mask, in arithmetic that stays exact beyond 32 bits.
  return Math.ceil(length / (mask + 1)) * (mask + 1);
}

/** `plaintext` ‖ 0x80 ‖ zeros, to its bucket's length. */
export function padPlaintext(plaintext: Uint8Array): Uint8Array {
  const out = new Uint8Array(paddedLength(plaintext.length + 1));
  out.set(plaintext);
  out[plaintext.length] = MARKER;
  return out;
}

/** The plaintext inside a padded body (a view, no copy). BadRequest when it does not end in 0x80 and zeros. */
export function unpadPlaintext(body: Uint8Array): Uint8Array {
  let end = body.length - 1;
  while (end >= 0 && body[end] === 0) end--;
  if (end < 0 || body[end] !== MARKER) throw new SyncError('BadRequest', 'malformed envelope padding');
  return body.subarray(0, end);
}
