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

interface StoredSeed {
  readonly v: 1;
  /** AES-GCM(seed) under the device key: `wrapSeedForBrowser`'s bytes. */
  readonly wrapped: Uint8Array;
}

/**
 * The seed in the client store (table `keys`), AES-GCM-wrapped under the device key: in a
 * browser that key is a non-extractable WebCrypto key kept in IndexedDB, so script can use it
 * but never read it out and a copy of the database files alone does not reveal the seed. In a
 * store that only keeps bytes (SQLite) the raw device key sits beside it, the same trade-off
 * as the API key: pass `seedFile` to keep the seed in a 0600 file instead.
 */
export function storeSeedStore(kv: KeyValueStore): SeedStore {
  return {
    location: 'store',
    async load() {
      const stored = await kv.get<StoredSeed>(KV_TABLES.keys, SEED_RECORD);
      if (stored === undefined) return undefined;
      const { unwrapSeedForBrowser } = await loadCrypto();
      return unwrapSeedForBrowser({ key: await deviceKey(kv), wrapped: stored.wrapped });
    },
    async save(seed, replace) {
      if (!replace && (await kv.get(KV_TABLES.keys, SEED_RECORD)) !== undefined) {
        throw new SyncError('Conflict', 'this device already keeps a root seed');
      }
      const { wrapSeedForBrowser } = await loadCrypto();
      const { wrapped } = await wrapSeedForBrowser(seed, await deviceKey(kv));
      const record: StoredSeed = { v: 1, wrapped };
      await kv.put(KV_TABLES.keys, SEED_RECORD, record);
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
