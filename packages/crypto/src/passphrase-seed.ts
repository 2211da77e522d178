import { SyncError } from '@scopesync/core';
import type * as SumoModule from 'libsodium-wrappers-sumo';
import { checkLength, concatBytes, readU32, utf8, writeU32 } from './bytes.ts';

// The root seed at rest under a passphrase: Argon2id (libsodium crypto_pwhash) stretches the
// passphrase into a key, XChaCha20-Poly1305 seals the seed under it. Without the passphrase a
// copy of the device's storage (IndexedDB files, a SQLite file) holds nothing that opens the
// seed, even though the device key sits next to it. crypto_pwhash is only in libsodium's "sumo"
// build, which is three times larger: it is imported on first use, never by the default path.
//
//   0   1   version = 1
//   1   1   algorithm = crypto_pwhash_ALG_ARGON2ID13 (2)
//   2   4   opslimit (u32 BE)
//   6   4   memlimit in KiB (u32 BE)
//   10  16  salt (random)
//   26  24  nonce (random)
//   50  48  XChaCha20-Poly1305(seed) ‖ tag, additional data = "scopesync:seed-passphrase:v1\0" ‖ bytes 0..50
//
// The parameters are in the clear and bound as additional data, so an attacker who edits them
// (to make the derivation cheap) only makes the seed fail to open.

type Sumo = typeof SumoModule;

const VERSION = 1;
const HEADER_BYTES = 50;
const SEED_BYTES = 32;
const KEY_BYTES = 32;
const WRAPPED_BYTES = HEADER_BYTES + SEED_BYTES + 16;
const DOMAIN = utf8('scopesync:seed-passphrase:v1\0');
/** Upper bounds honoured when opening, so stored parameters cannot make a device hang or run out of memory. */
const MAX_OPSLIMIT = 16;
const MAX_MEMLIMIT_KIB = 1024 * 1024;

/** How much work the passphrase derivation costs: libsodium's INTERACTIVE (64 MiB) or MODERATE (256 MiB) limits. */
export type PassphraseStrength = 'interactive' | 'moderate';

let sumo: Promise<Sumo> | undefined;

/** libsodium's sumo build, loaded on first use (the default build has no crypto_pwhash). */
function loadSumo(): Promise<Sumo> {
  sumo ??= (async () => {
    const mod: unknown = await import('libsodium-wrappers-sumo');
    const api = ((mod as { default?: Sumo }).default ?? mod) as Sumo;
    await api.ready;
    return api;
  })().catch((cause: unknown) => {
    sumo = undefined;
    throw new SyncError('Unavailable', 'libsodium (sumo) failed to load', { cause });
  });
  return sumo;
}

function checkPassphrase(passphrase: string): void {
  if (typeof passphrase !== 'string' || passphrase.length === 0) {
    throw new SyncError('BadRequest', 'the passphrase must be a non-empty string');
  }
}

/**
 * Seals the 32-byte root seed under a key Argon2id derives from `passphrase` (98 bytes, layout
 * above). BadRequest for a seed that is not 32 bytes or an empty passphrase.
 */
export async function wrapSeedWithPassphrase(
  rootSeed: Uint8Array,
  passphrase: string,
  strength: PassphraseStrength = 'interactive',
): Promise<Uint8Array> {
  checkLength(rootSeed, SEED_BYTES, 'root seed');
  checkPassphrase(passphrase);
  const s = await loadSumo();
  const opslimit =
    strength === 'moderate' ? s.crypto_pwhash_OPSLIMIT_MODERATE : s.crypto_pwhash_OPSLIMIT_INTERACTIVE;
  const memlimit =
    strength === 'moderate' ? s.crypto_pwhash_MEMLIMIT_MODERATE : s.crypto_pwhash_MEMLIMIT_INTERACTIVE;
  const header = new Uint8Array(HEADER_BYTES);
  header[0] = VERSION;
  header[1] = s.crypto_pwhash_ALG_ARGON2ID13;
  writeU32(header, 2, opslimit);
  writeU32(header, 6, memlimit / 1024);
  header.set(s.randombytes_buf(s.crypto_pwhash_SALTBYTES), 10);
  header.set(s.randombytes_buf(s.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES), 26);
  const key = derive(s, passphrase, header);
  try {
    const sealed = s.crypto_aead_xchacha20poly1305_ietf_encrypt(
      rootSeed,
      concatBytes(DOMAIN, header),
      null,
      header.subarray(26, 50),
      key,
    );
    return concatBytes(header, sealed);
  } finally {
    s.memzero(key);
  }
}

/**
 * Opens a seed sealed by {@link wrapSeedWithPassphrase}. BadRequest for malformed bytes or
 * parameters past the bounds a device honours; Forbidden for a wrong passphrase (or altered bytes).
 */
export async function unwrapSeedWithPassphrase(wrapped: Uint8Array, passphrase: string): Promise<Uint8Array> {
  checkPassphrase(passphrase);
  if (!(wrapped instanceof Uint8Array) || wrapped.length !== WRAPPED_BYTES || wrapped[0] !== VERSION) {
    throw new SyncError(
      'BadRequest',
      `a passphrase-wrapped seed is ${WRAPPED_BYTES} bytes starting with version ${VERSION}`,
    );
  }
  const s = await loadSumo();
  const header = wrapped.subarray(0, HEADER_BYTES);
  const opslimit = readU32(header, 2);
  const memKib = readU32(header, 6);
  if (
    header[1] !== s.crypto_pwhash_ALG_ARGON2ID13 ||
    opslimit < 1 ||
    opslimit > MAX_OPSLIMIT ||
    memKib < 8 ||
    memKib > MAX_MEMLIMIT_KIB
  ) {
    throw new SyncError(
      'BadRequest',
      'the passphrase-wrapped seed names parameters this device does not accept',
    );
  }
  const key = derive(s, passphrase, header);
  try {
    return s.crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      wrapped.subarray(HEADER_BYTES),
      concatBytes(DOMAIN, header),
      header.subarray(26, 50),
      key,
    );
  } catch (cause) {
    throw new SyncError('Forbidden', 'wrong passphrase: the seed does not open with it', { cause });
  } finally {
    s.memzero(key);
  }
}

/** True when `wrapped` has the layout of {@link wrapSeedWithPassphrase}'s output (it may still not open). */
export function isPassphraseWrappedSeed(wrapped: unknown): wrapped is Uint8Array {
  return wrapped instanceof Uint8Array && wrapped.length === WRAPPED_BYTES && wrapped[0] === VERSION;
}

function derive(s: Sumo, passphrase: string, header: Uint8Array): Uint8Array {
  return s.crypto_pwhash(
    KEY_BYTES,
    utf8(passphrase),
    header.subarray(10, 26),
    readU32(header, 2),
    readU32(header, 6) * 1024,
    header[1] as number,
  );
}
