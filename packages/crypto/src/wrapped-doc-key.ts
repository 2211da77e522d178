import { parseDocName, SyncError } from '@scopesync/core';
import { checkLength, concatBytes, fromHex, readU32, toHex, utf8, writeU32 } from './bytes.ts';
import { checkDocKey, DOC_KEY_BYTES, type DocKey, KEY_ID_BYTES } from './doc-key.ts';
import { sodium } from './sodium.ts';

// A document key wrapped under the user's KEK, as stored locally and on the relay:
//
//   0   1   version = 1
//   1   4   epoch (u32 big-endian)
//   5   16  key id
//   21  24  nonce (random)
//   45  48  XChaCha20-Poly1305-IETF(key bytes), AD = "scopesync:wrapped-doc-key:v1\0" ‖ bytes[0, 21) ‖ doc name
//
// The doc name in the AD is what stops a wrapped key from being moved onto another document.

const VERSION = 1;
const HEADER_BYTES = 1 + 4 + KEY_ID_BYTES;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;

/** Total bytes of a wrapped document key. */
export const WRAPPED_DOC_KEY_BYTES = HEADER_BYTES + NONCE_BYTES + DOC_KEY_BYTES + TAG_BYTES;

const DOMAIN = utf8('scopesync:wrapped-doc-key:v1\0');

function additionalData(header: Uint8Array, docName: string): Uint8Array {
  return concatBytes(DOMAIN, header, utf8(docName));
}

/**
 * Wraps `key` for `docName` under the 32-byte `kek` (XChaCha20-Poly1305, random nonce). The result
 * may be stored anywhere, the relay included. BadRequest for malformed input. Requires `ready()`.
 */
export function wrapDocKey(kek: Uint8Array, docName: string, key: DocKey): Uint8Array {
  checkLength(kek, 32, 'KEK');
  parseDocName(docName);
  checkDocKey(key);
  const s = sodium();
  const header = new Uint8Array(HEADER_BYTES);
  header[0] = VERSION;
  writeU32(header, 1, key.epoch);
  header.set(fromHex(key.id, 'key id'), 5);
  const nonce = s.randombytes_buf(NONCE_BYTES);
  const sealed = s.crypto_aead_xchacha20poly1305_ietf_encrypt(
    key.bytes,
    additionalData(header, docName),
    null,
    nonce,
    kek,
  );
  return concatBytes(header, nonce, sealed);
}

/**
 * Opens a key made by {@link wrapDocKey}. BadRequest for malformed bytes; Forbidden when it does not
 * open — another user's KEK, another document, or any altered byte. Requires `ready()`.
 */
export function unwrapDocKey(kek: Uint8Array, docName: string, wrapped: Uint8Array): DocKey {
  checkLength(kek, 32, 'KEK');
  parseDocName(docName);
  if (!(wrapped instanceof Uint8Array) || wrapped.length !== WRAPPED_DOC_KEY_BYTES) {
    throw new SyncError('BadRequest', `a wrapped document key is ${WRAPPED_DOC_KEY_BYTES} bytes`);
  }
  if (wrapped[0] !== VERSION)
    throw new SyncError('BadRequest', `unsupported wrapped key version ${wrapped[0]}`);
  const header = wrapped.subarray(0, HEADER_BYTES);
  const nonce = wrapped.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
  let bytes: Uint8Array;
  try {
    bytes = sodium().crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      wrapped.subarray(HEADER_BYTES + NONCE_BYTES),
      additionalData(header, docName),
      nonce,
      kek,
    );
  } catch (cause) {
    throw new SyncError(
      'Forbidden',
      'wrapped document key does not open: wrong KEK, wrong document or altered',
      {
        cause,
      },
    );
  }
  return { id: toHex(wrapped.subarray(5, HEADER_BYTES)), epoch: readU32(wrapped, 1), bytes };
}
