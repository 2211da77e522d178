import { SyncError } from '@scopesync/core';

// Small byte helpers shared by the codecs in this package. Not exported from the package: callers
// deal in Uint8Array and strings, not in our layout helpers.

const encoder = new TextEncoder();

/** UTF-8 bytes of a string. */
export function utf8(value: string): Uint8Array {
  return encoder.encode(value);
}

/** One new array holding every part in order. */
export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * A signed statement's bytes: `domain`, then each text NUL-terminated (callers check texts hold
 * no NUL), then each key as it is. The one layout of the registration proof and the rotation.
 */
export function statementBytes(
  domain: Uint8Array,
  texts: readonly string[],
  keys: readonly Uint8Array[],
): Uint8Array {
  const zero = new Uint8Array([0]);
  return concatBytes(domain, ...texts.flatMap((text) => [utf8(text), zero]), ...keys);
}

/** Writes an unsigned 32-bit big-endian integer. */
export function writeU32(target: Uint8Array, offset: number, value: number): void {
  new DataView(target.buffer, target.byteOffset, target.byteLength).setUint32(offset, value, false);
}

/** Reads an unsigned 32-bit big-endian integer. */
export function readU32(source: Uint8Array, offset: number): number {
  return new DataView(source.buffer, source.byteOffset, source.byteLength).getUint32(offset, false);
}

/** Byte equality for public values (hashes, public keys); not constant-time, so never for secrets. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lowercase hex of the bytes. */
export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** Bytes of a lowercase or uppercase hex string; BadRequest for anything else. */
export function fromHex(hex: string, what: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex))
    throw new SyncError('BadRequest', `${what} is not hex`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Throws BadRequest unless `value` is a Uint8Array of exactly `length` bytes. */
export function checkLength(value: unknown, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new SyncError('BadRequest', `${what} must be ${length} bytes`);
  }
  return value;
}

/** Throws BadRequest unless `value` is a whole number in 0‥2³²−1 (the u32 fields of our layouts). */
export function checkU32(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new SyncError('BadRequest', `${what} must be an integer in 0..4294967295`);
  }
  return value;
}
