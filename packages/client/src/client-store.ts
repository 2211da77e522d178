import { type DocStore, type KeyValueStore, MemoryDocStore, MemoryKeyValueStore } from '@scopesync/core';
import { type IndexedDbOptions, ScopesyncDatabase } from './indexed-db-database.ts';
import { IndexedDbDocStore } from './indexed-db-doc-store.ts';
import { IndexedDbKeyValueStore } from './indexed-db-key-value-store.ts';

/**
 * Everything a client keeps on the device: per-document update logs (bytes only, plaintext
 * updates or envelopes) and small records (document metadata, queued HTTP operations,
 * wrapped keys, the encrypted API key and the device key).
 */
export interface ClientStore {
  readonly docs: DocStore;
  readonly kv: KeyValueStore;
}

/** The tables a client keeps in its {@link KeyValueStore}. */
export const KV_TABLES = {
  /** Per-document metadata (see `DocMeta`), keyed by document name. */
  docs: 'docs',
  /** The device key, the encrypted API key and the cached identity. */
  identity: 'identity',
  /** HTTP operations queued while offline (userdata deletes), keyed by a sortable id. */
  outbox: 'outbox',
  /** Key material, never in the clear: the wrapped root seed, wrapped document keys (`doc:<name>`). */
  keys: 'keys',
} as const;

/** A client store in memory: nothing survives the process. The default where IndexedDB is absent. */
export function memoryClientStore(): ClientStore {
  return { docs: new MemoryDocStore(), kv: new MemoryKeyValueStore() };
}

/**
 * A client store in one IndexedDB database (Dexie): the browser default. Pass fake-indexeddb's
 * `indexedDB` and `IDBKeyRange` to use it in Node.
 */
export function indexedDbClientStore(options: IndexedDbOptions = {}): ClientStore {
  const database = new ScopesyncDatabase(options);
  return { docs: new IndexedDbDocStore(database), kv: new IndexedDbKeyValueStore(database) };
}

/** IndexedDB where there is one (browsers), memory otherwise. */
export function defaultClientStore(): ClientStore {
  return globalThis.indexedDB !== undefined ? indexedDbClientStore() : memoryClientStore();
}
