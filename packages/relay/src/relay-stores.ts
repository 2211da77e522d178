/**
 * The stores a relay opens for itself: SQLite files in its data dir, or memory stores without
 * one (or the stores it was given).
 */

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type DocStore, MemoryDocStore, type RelayStore, SyncError } from '@scopesync/core';
import { SqliteDocStore, SqliteRelayStore } from '@scopesync/store-sqlite';
import { MemoryRelayStore } from './memory-relay-store.ts';
import type { RelayOptions } from './relay-options.ts';

/** The file in a data dir holding users, keys, metadata, shares, the audit log and grants. */
export const RELAY_DB_FILE = 'relay.sqlite';
/** The file in a data dir holding the document logs. */
export const DOCS_DB_FILE = 'docs.sqlite';

/**
 * The page cache of each SQLite file a relay opens in its data dir, in KiB. `relay.sqlite` is
 * read on every upgrade (the key and its user): with better-sqlite3's default of 16,000 KiB, a
 * relay that thousands of users connected to keeps all their rows' pages too; 256 KiB still
 * holds the interior b-tree pages every lookup walks, and the leaves come from the OS file
 * cache (bench/results-history.md, "the page cache of relay.sqlite"). `docs.sqlite` keeps the driver's
 * default, on each of its two connections (reads on the loop, writes on the writer thread).
 */
export const DEFAULT_SQLITE_CACHE_KIB = { relay: 256, docs: 16_000 } as const;

/**
 * The relay's stores, from `options.stores`, its data dir or memory; `owned` lists those the
 * relay opened, which it closes. BadRequest when both `stores` and `dataDir` are given.
 */
export function openStores(options: RelayOptions): {
  relayStore: RelayStore;
  docStore: DocStore;
  owned: { close(): Promise<void> }[];
} {
  if (options.stores) {
    if (options.dataDir !== undefined)
      throw new SyncError('BadRequest', 'give either dataDir or stores, not both');
    return { ...options.stores, owned: [] };
  }
  if (options.dataDir === undefined) {
    const relayStore = new MemoryRelayStore();
    const docStore = new MemoryDocStore();
    return { relayStore, docStore, owned: [relayStore, docStore] };
  }
  mkdirSync(options.dataDir, { recursive: true });
  const cacheKiB = {
    relay: options.sqliteCacheKiB?.relay ?? DEFAULT_SQLITE_CACHE_KIB.relay,
    docs: options.sqliteCacheKiB?.docs ?? DEFAULT_SQLITE_CACHE_KIB.docs,
  };
  const relayStore: RelayStore = new SqliteRelayStore({
    path: join(options.dataDir, RELAY_DB_FILE),
    cacheKiB: cacheKiB.relay,
  });
  let docStore: DocStore;
  try {
    // Document writes are the relay's hot path. The whole commit (the append, its fsync and
    // SQLite's checkpoint) runs on a thread with a connection of its own: the loop goes back to
    // its sockets the moment an edit is sent out, and the disk work runs beside it. On two quiet
    // cores shared with the clients, that took the ten-reader edit latency from 1.33–1.37×
    // y-websocket to 1.00–1.16× (bench/results-history.md, "The whole commit on the writer thread").
    // An earlier measurement on cores oversubscribed by other work found the opposite, and the
    // store keeps `checkpointOnThread` for such a machine (ibid., "The relay's hot path, second
    // pass").
    docStore = new SqliteDocStore({
      path: join(options.dataDir, DOCS_DB_FILE),
      writeOnThread: true,
      cacheKiB: cacheKiB.docs,
    });
  } catch (error) {
    void relayStore.close();
    throw error;
  }
  return { relayStore, docStore, owned: [relayStore, docStore] };
}
