import { SyncError } from '@scopesync/core';
import { checkLength, concatBytes, utf8 } from './bytes.ts';
import { subtleCrypto } from './subtle.ts';

// The root seed at rest in a browser: AES-256-GCM under a WebCrypto key created non-extractable,
// so script can use the key while the page is open but never export its bytes. That is all it
// does: the browser serializes the key, bytes included, into the same IndexedDB files, so a copy
// of those files reveals the seed; and script on the page can decrypt the seed with it. Against a
// copied disk use passphrase-seed.ts; against script on the page, the relay's CSP.
//
//   0   1   version = 1
//   1   12  IV (random)
//   13  48  AES-GCM(seed) ‖ tag, additionalData = "scopesync:root-seed:v1"

const VERSION = 1;
const IV_BYTES = 12;
const SEED_BYTES = 32;
const WRAPPED_BYTES = 1 + IV_BYTES + SEED_BYTES + 16;
const AAD = utf8('scopesync:root-seed:v1');

/** A wrapped root seed and the key that opens it. Store both as they are: IndexedDB keeps a CryptoKey by structured clone. */
export interface BrowserWrappedSeed {
  /** A non-extractable AES-GCM CryptoKey. */
  readonly key: CryptoKey;
  /** The seed encrypted under `key`. */
  readonly wrapped: Uint8Array;
}

// TypeScript's DOM lib wants ArrayBuffer-backed views; ours always are.
const buffer = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => bytes as Uint8Array<ArrayBuffer>;

/** A fresh non-extractable AES-256-GCM key for {@link wrapSeedForBrowser}. */
export async function createSeedWrappingKey(): Promise<CryptoKey> {
  return subtleCrypto().generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

/**
 * Encrypts the root seed under `key` (default: a fresh key from {@link createSeedWrappingKey}).
 * BadRequest for a seed that is not 32 bytes or a key that is extractable or not AES-GCM;
 * Unavailable where WebCrypto is missing (insecure context).
 */
export async function wrapSeedForBrowser(rootSeed: Uint8Array, key?: CryptoKey): Promise<BrowserWrappedSeed> {
  checkLength(rootSeed, SEED_BYTES, 'root seed');
  const wrappingKey = key ?? (await createSeedWrappingKey());
  if (wrappingKey.extractable)
    throw new SyncError('BadRequest', 'the seed wrapping key must be non-extractable');
  if (wrappingKey.algorithm.name !== 'AES-GCM')
    throw new SyncError('BadRequest', 'the seed wrapping key must be AES-GCM');
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const sealed = await subtleCrypto().encrypt(
    { name: 'AES-GCM', iv, additionalData: buffer(AAD) },
    wrappingKey,
    buffer(rootSeed),
  );
  return { key: wrappingKey, wrapped: concatBytes(Uint8Array.of(VERSION), iv, new Uint8Array(sealed)) };
}

/**
 * Decrypts a seed stored by {@link wrapSeedForBrowser}. BadRequest for malformed bytes; Forbidden when
 * it does not open (another key, or altered bytes).
 */
export async function unwrapSeedForBrowser(stored: BrowserWrappedSeed): Promise<Uint8Array> {
  const { key, wrapped } = stored;
  if (!(wrapped instanceof Uint8Array) || wrapped.length !== WRAPPED_BYTES || wrapped[0] !== VERSION) {
    throw new SyncError(
      'BadRequest',
      `a wrapped seed is ${WRAPPED_BYTES} bytes starting with version ${VERSION}`,
    );
  }
  if (typeof key !== 'object' || key === null || !('algorithm' in key)) {
    throw new SyncError('BadRequest', 'the seed wrapping key must be a CryptoKey');
  }
  const subtle = subtleCrypto();
  try {
    const seed = await subtle.decrypt(
      { name: 'AES-GCM', iv: buffer(wrapped.slice(1, 1 + IV_BYTES)), additionalData: buffer(AAD) },
      key,
      buffer(wrapped.slice(1 + IV_BYTES)),
    );
    return new Uint8Array(seed);
  } catch (cause) {
    throw new SyncError('Forbidden', 'the wrapped seed does not open with this key', { cause });
  }
}
