/**
 * The stores the client reads, as Dexie lays them out in the native database for
 * `version(1).stores({ entries: '[doc+seq], doc', heads: 'doc', kv: '[table+key], table' })`:
 * a compound primary key becomes an array key path, and Dexie's version 1 is native version 10.
 */
export const READ_STORES: Readonly<Record<'entries' | 'heads' | 'kv', string | readonly string[]>> = {
  entries: ['doc', 'seq'],
  heads: 'doc',
  kv: ['table', 'key'],
};

/** Native versions Dexie gives schema version 1: 10, or above when it patched a drifted schema. */
const NATIVE_VERSIONS = { min: 10, below: 20 } as const;

/**
 * Opens an existing client database with the plain IndexedDB API, for reads only: on a page
 * load this skips Dexie's constructor, schema parse and open (about the whole gap of a cold
 * first read to y-indexeddb's). Resolves with null — and leaves nothing behind — when the
 * database does not exist yet, is at another schema version or lacks a store the reads use:
 * the caller then opens it through Dexie, which creates and upgrades. Never creates or changes
 * a database itself.
 */
export function openReadConnection(factory: IDBFactory, name: string): Promise<IDBDatabase | null> {
  return new Promise((resolve, reject) => {
    // No version: an existing database opens at its own, so no upgrade is ever asked for it.
    const request = factory.open(name);
    let absent = false;
    request.onupgradeneeded = () => {
      // Only a database that does not exist gets here (from version 0): abort, so that it is
      // not created empty at version 1; Dexie will create it with its schema.
      absent = true;
      request.transaction?.abort();
    };
    request.onerror = (event) => {
      if (absent) {
        // Our own abort: not an error for anyone else to see.
        event.preventDefault();
        resolve(null);
      } else reject(request.error);
    };
    request.onsuccess = () => {
      const db = request.result;
      if (matchesSchema(db)) resolve(db);
      else {
        db.close();
        resolve(null);
      }
    };
  });
}

/** True when `db` is at schema version 1 and holds every read store with its key path. */
function matchesSchema(db: IDBDatabase): boolean {
  if (db.version < NATIVE_VERSIONS.min || db.version >= NATIVE_VERSIONS.below) return false;
  const names = Object.keys(READ_STORES);
  if (!names.every((store) => db.objectStoreNames.contains(store))) return false;
  // Key paths are only readable through a transaction; this one makes no request and ends by itself.
  const tx = db.transaction(names, 'readonly');
  return Object.entries(READ_STORES).every(([store, keyPath]) =>
    sameKeyPath(tx.objectStore(store).keyPath, keyPath),
  );
}

function sameKeyPath(actual: string | string[] | null, expected: string | readonly string[]): boolean {
  if (typeof expected === 'string') return actual === expected;
  return (
    Array.isArray(actual) &&
    actual.length === expected.length &&
    actual.every((part, i) => part === expected[i])
  );
}
