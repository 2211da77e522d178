export type { SqliteDocStoreOptions, SqliteSynchronous } from './sqlite-doc-store.ts';
export { SqliteDocStore } from './sqlite-doc-store.ts';
export type { SqliteKeyValueStoreOptions } from './sqlite-key-value-store.ts';
export { SqliteKeyValueStore } from './sqlite-key-value-store.ts';
export type { SqliteRelayStoreOptions } from './sqlite-relay-store.ts';
export { SqliteRelayStore } from './sqlite-relay-store.ts';
export type {
  AuditHeadRow,
  AuditRow,
  AuditRowQuery,
  BlobRowWrite,
  KeyGrantRow,
  KeyRow,
  ObjectRow,
  ObjectRowListing,
  ObjectRowPatch,
  ShareRow,
  UserKeysRow,
  UserRow,
  WrappedKeyRow,
} from './sqlite-relay-store-records.ts';
