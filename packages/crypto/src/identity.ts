import { checkLength } from './bytes.ts';
import { sodium } from './sodium.ts';

/** Bytes in a root seed. */
export const ROOT_SEED_BYTES = 32;

/** The crypto_kdf context for every subkey of a root seed (exactly 8 bytes, a libsodium rule). */
const KDF_CONTEXT = 'scopesyn';

// Subkey ids under KDF_CONTEXT. These numbers are part of the identity: changing one changes every
// user's keys and orphans their data. Add new ids, never renumber.
const SUBKEY_SIGN_SEED = 1;
const SUBKEY_BOX_SEED = 2;
const SUBKEY_KEK = 3;

/** A user's keys, all derived from the root seed: the same on every device that knows the seed. */
export interface Identity {
  /** Ed25519 public key: identifies the author of envelopes and grants; registered with the relay. */
  readonly signPublicKey: Uint8Array;
  /** Ed25519 secret key (64 bytes, libsodium layout: seed ‖ public key). Secret. */
  readonly signSecretKey: Uint8Array;
  /** X25519 public key: others seal document keys to it when they share a blob. */
  readonly boxPublicKey: Uint8Array;
  /** X25519 secret key. Secret. */
  readonly boxSecretKey: Uint8Array;
  /** 32-byte key-encryption key that wraps this user's private-scope document keys. Secret. */
  readonly kek: Uint8Array;
}

/** A fresh random 32-byte root seed. Requires {@link ready}. */
export function generateRootSeed(): Uint8Array {
  return sodium().randombytes_buf(ROOT_SEED_BYTES);
}

/**
 * Derives a user's {@link Identity} from the 32-byte root seed with crypto_kdf. Deterministic: a
 * second device that imports the recovery phrase gets the same keys. BadRequest for a seed of the
 * wrong size. Requires {@link ready}.
 */
export function deriveIdentity(rootSeed: Uint8Array): Identity {
  checkLength(rootSeed, ROOT_SEED_BYTES, 'root seed');
  const s = sodium();
  const signSeed = s.crypto_kdf_derive_from_key(32, SUBKEY_SIGN_SEED, KDF_CONTEXT, rootSeed);
  const boxSeed = s.crypto_kdf_derive_from_key(32, SUBKEY_BOX_SEED, KDF_CONTEXT, rootSeed);
  const sign = s.crypto_sign_seed_keypair(signSeed);
  const box = s.crypto_box_seed_keypair(boxSeed);
  // The intermediate seeds are as sensitive as the keys and no longer needed.
  s.memzero(signSeed);
  s.memzero(boxSeed);
  return {
    signPublicKey: sign.publicKey,
    signSecretKey: sign.privateKey,
    boxPublicKey: box.publicKey,
    boxSecretKey: box.privateKey,
    kek: s.crypto_kdf_derive_from_key(32, SUBKEY_KEK, KDF_CONTEXT, rootSeed),
  };
}
