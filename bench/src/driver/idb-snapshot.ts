/** One index of an object store, as IndexedDB describes it. */
interface IndexDump {
  readonly name: string;
  readonly keyPath: string | string[];
  readonly unique: boolean;
  readonly multiEntry: boolean;
}

/** One object store: its shape and every record (keys and values in key order). */
interface StoreDump {
  readonly name: string;
  readonly keyPath: string | string[] | null;
  readonly autoIncrement: boolean;
  readonly indexes: readonly IndexDump[];
  readonly keys: readonly IDBValidKey[];
  readonly values: readonly unknown[];
}

/** One database at its version. */
export interface DatabaseDump {
  readonly name: string;
  readonly version: number;
  readonly stores: readonly StoreDump[];
}

/**
 * Every database of an IndexedDB factory, with its stores, indexes and records, through the
 * plain IndexedDB API (no Dexie, no client code). With {@link restoreDatabases} a bench fills
 * a store in one process and reads it in another one where none of the read path has run:
 * fake-indexeddb lives in memory, so this copy is what "the page was closed" means in Node.
 */
export async function dumpDatabases(factory: IDBFactory): Promise<DatabaseDump[]> {
  const dumps: DatabaseDump[] = [];
  for (const info of await factory.databases()) {
    if (info.name === undefined) continue;
    const db = await settle(factory.open(info.name));
    const names = Array.from({ length: db.objectStoreNames.length }, (_, i) => db.objectStoreNames.item(i)!);
    const stores: Array<Promise<StoreDump>> = [];
    if (names.length > 0) {
      const tx = db.transaction(names, 'readonly');
      for (const name of names) {
        const store = tx.objectStore(name);
        const indexes = Array.from(
          { length: store.indexNames.length },
          (_, i) => store.indexNames.item(i)!,
        ).map((index) => {
          const { keyPath, unique, multiEntry } = store.index(index);
          return { name: index, keyPath, unique, multiEntry };
        });
        // Both requests before any await: the transaction commits once it has none left.
        const keys = settle(store.getAllKeys());
        const values = settle(store.getAll());
        const { keyPath, autoIncrement } = store;
        stores.push(
          Promise.all([keys, values]).then(([k, v]) => ({
            name,
            keyPath,
            autoIncrement,
            indexes,
            keys: k,
            values: v,
          })),
        );
      }
    }
    dumps.push({ name: info.name, version: db.version, stores: await Promise.all(stores) });
    db.close();
  }
  return dumps;
}

/** Creates the dumped databases in `factory` (which must not hold them yet), records and all. */
export async function restoreDatabases(factory: IDBFactory, dumps: readonly DatabaseDump[]): Promise<void> {
  for (const dump of dumps) {
    const request = factory.open(dump.name, dump.version);
    request.onupgradeneeded = () => {
      const db = request.result;
      for (const s of dump.stores) {
        const store = db.createObjectStore(s.name, { keyPath: s.keyPath, autoIncrement: s.autoIncrement });
        for (const { name, keyPath, unique, multiEntry } of s.indexes)
          store.createIndex(name, keyPath, { unique, multiEntry });
        s.values.forEach((value, i) => {
          if (s.keyPath === null) store.put(ownBuffers(value), s.keys[i]);
          else store.put(ownBuffers(value));
        });
      }
    };
    // Success comes after the upgrade transaction, and with it every record, has committed.
    (await settle(request)).close();
  }
}

/**
 * `value` with every Uint8Array copied into a buffer of its own. `v8.deserialize` hands back
 * typed arrays that are views of one buffer holding the whole file, and IndexedDB's structured
 * clone stores a view's whole buffer: each record would keep a copy of the file.
 */
function ownBuffers(value: unknown): unknown {
  if (value instanceof Uint8Array) return value.slice();
  if (Array.isArray(value)) return value.map(ownBuffers);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, ownBuffers(v)]));
  return value;
}

function settle<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}
