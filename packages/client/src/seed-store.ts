import { type KeyValueStore, SyncError } from '@scopesync/core';
import { KV_TABLES } from './client-store.ts';
import { deviceKey } from './identity.ts';
import { loadCrypto } from './load-crypto.ts';

/** Where a {@link SeedStore} keeps the root seed. */
export type SeedLocation = 'store' | 'seed-file';

/**
 * Where this device keeps the user's 32-byte root seed at rest. Never in the clear in the
 * client's records: wrapped under the device key, or in a file only its owner can read.
 */
export interface SeedStore {
  /** `store`: wrapped in the client store; `seed-file`: a 0600 file (Node). */
  readonly location: SeedLocation;
  /** The seed, or undefined when this device has none yet. */
  load(): Promise<Uint8Array | undefined>;
  /** Keeps `seed`; `replace` allows overwriting a different one. */
  save(seed: Uint8Array, replace: boolean): Promise<void>;
}

const SEED_RECORD = 'root-seed';

/** The record of the seed: under the device key (v1), or under a passphrase (v2). */
type StoredSeed =
  | {
      readonly v: 1;
      /** AES-GCM(seed) under the device key: `wrapSeedForBrowser`'s bytes. */
      readonly wrapped: Uint8Array;
    }
  | {
      readonly v: 2;
      /** The seed under a key Argon2id derives from the passphrase: `wrapSeedWithPassphrase`'s bytes. */
      readonly passphrase: Uint8Array;
    };

/**
 * The seed in the client store (table `keys`). Without a passphrase it is AES-GCM-wrapped under
 * the device key, which sits in the same store: in a browser a non-extractable WebCrypto key,
 * which script cannot export, but which the browser serializes into the same IndexedDB files.
 * So that wrapping stops a script from reading the key bytes out, not a copy of the files:
 * **a copy of the profile's IndexedDB files reveals the seed**. With `passphrase` the seed is
 * sealed under a key Argon2id derives from it (`crypto_pwhash`, libsodium sumo, loaded only
 * then): a copy of the files then holds nothing that opens it. A seed stored without one is
 * moved under the passphrase the first time it is given. In a store that only keeps bytes
 * (SQLite) the raw device key sits beside the seed, the same trade-off as the API key.
 * `record` names the record (the root seed's by default; a device's own key seed has another).
 */
export function storeSeedStore(kv: KeyValueStore, passphrase?: string, record = SEED_RECORD): SeedStore {
  const seal = async (seed: Uint8Array): Promise<StoredSeed> => {
    const { wrapSeedForBrowser, wrapSeedWithPassphrase } = await loadCrypto();
    return passphrase === undefined
      ? { v: 1, wrapped: (await wrapSeedForBrowser(seed, await deviceKey(kv))).wrapped }
      : { v: 2, passphrase: await wrapSeedWithPassphrase(seed, passphrase) };
  };
  return {
    location: 'store',
    async load() {
      const stored = await kv.get<StoredSeed>(KV_TABLES.keys, record);
      if (stored === undefined) return undefined;
      const { isPassphraseWrappedSeed, unwrapSeedForBrowser, unwrapSeedWithPassphrase } = await loadCrypto();
      if (stored.v === 2 && isPassphraseWrappedSeed(stored.passphrase)) {
        if (passphrase === undefined) {
          throw new SyncError(
            'Unauthorized',
            'this device keeps its root seed under a passphrase: pass it to createClient({ passphrase })',
          );
        }
        return unwrapSeedWithPassphrase(stored.passphrase, passphrase);
      }
      if (stored.v !== 1)
        throw new SyncError('Internal', 'the stored root seed record is not one this client knows');
      const seed = await unwrapSeedForBrowser({ key: await deviceKey(kv), wrapped: stored.wrapped });
      // Given a passphrase for the first time: from now on the seed needs it.
      if (passphrase !== undefined) await kv.put(KV_TABLES.keys, record, await seal(seed));
      return seed;
    },
    async save(seed, replace) {
      if (!replace && (await kv.get(KV_TABLES.keys, record)) !== undefined) {
        throw new SyncError('Conflict', 'this device already keeps a root seed');
      }
      await kv.put(KV_TABLES.keys, record, await seal(seed));
    },
  };
}

/**
 * The seed in a file readable by its owner only (mode 0600, `@scopesync/crypto/node`). Loaded
 * on first use, so browser bundles never pull the Node file code in.
 */
export function fileSeedStore(path: string): SeedStore {
  const node = () => import('@scopesync/crypto/node');
  return {
    location: 'seed-file',
    async load() {
      const { readSeedFile } = await node();
      try {
        return await readSeedFile(path);
      } catch (error) {
        if (error instanceof SyncError && error.kind === 'NotFound') return undefined;
        throw error;
      }
    },
    async save(seed, replace) {
      const { writeSeedFile } = await node();
      await writeSeedFile(path, seed, { overwrite: replace });
    },
  };
}
