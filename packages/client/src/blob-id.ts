/** Letters and digits: inside the id grammar and safe in a URL segment without escaping. */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** 22 characters of 62: 130 bits, as unguessable as a random UUID and shorter. */
const LENGTH = 22;

/**
 * A fresh blob id: 22 crypto-random letters and digits. Nobody else will pick it, so a blob
 * created under it is yours — unlike a readable id such as `notes.md`, which the first user to
 * create it owns for everyone.
 */
export function randomBlobId(): string {
  let id = '';
  while (id.length < LENGTH) {
    for (const byte of globalThis.crypto.getRandomValues(new Uint8Array(LENGTH * 2))) {
      // 248 = 4 × 62: bytes above it would favour the first letters; skip them.
      if (byte < 248 && id.length < LENGTH) id += ALPHABET[byte % 62];
    }
  }
  return id;
}
