/**
 * A value a {@link KeyValueStore} keeps: JSON values and `Uint8Array`, nested in any way.
 * Stores whose `cloneable` is true (IndexedDB) also accept any structured-cloneable value,
 * such as a non-extractable WebCrypto `CryptoKey`; the others reject what they cannot keep.
 */
export type KvValue =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | readonly KvValue[]
  | { readonly [field: string]: KvValue | undefined };

/** One record of a table. */
export interface KvEntry<T = unknown> {
  readonly key: string;
  readonly value: T;
}

/** One operation of an atomic {@link KeyValueStore.batch}. */
export type KvOp =
  | { readonly op: 'put'; readonly table: string; readonly key: string; readonly value: unknown }
  | { readonly op: 'delete'; readonly table: string; readonly key: string };

/**
 * Small records by table and key, next to a {@link DocStore}: a client keeps its document
 * metadata, queued HTTP operations, wrapped keys and its (encrypted) API key here. Values
 * are copied on the way in and out, so a caller never shares a mutable object with the store.
 * Every method resolves only once its effect is durable for that store.
 */
export interface KeyValueStore {
  /**
   * True when values may be anything structured-cloneable (a non-extractable `CryptoKey`
   * included); false when only {@link KvValue}s survive.
   */
  readonly cloneable: boolean;
  /** The record's value, or undefined when there is none. */
  get<T = unknown>(table: string, key: string): Promise<T | undefined>;
  /** Stores `value` under `key`, replacing any previous value. */
  put(table: string, key: string, value: unknown): Promise<void>;
  /** Removes the record; a missing record is not an error. */
  delete(table: string, key: string): Promise<void>;
  /** The table's records whose key starts with `prefix` (default: all), sorted by key. */
  list<T = unknown>(table: string, prefix?: string): Promise<KvEntry<T>[]>;
  /** Applies every operation in one transaction, in order: all take effect or none. */
  batch(ops: readonly KvOp[]): Promise<void>;
  /** Releases the store. Idempotent; later calls reject with Unavailable. */
  close(): Promise<void>;
}
