export type { SqliteSynchronous } from './open-sqlite-file.ts';
export type { SqliteDocStoreOptions } from './sqlite-doc-store.ts';
export { SqliteDocStore } from './sqlite-doc-store.ts';
export type { SqliteFileOptions } from './sqlite-handle.ts';
export type { SqliteKeyValueStoreOptions } from './sqlite-key-value-store.ts';
export { SqliteKeyValueStore } from './sqlite-key-value-store.ts';
export type { SqliteRelayStoreOptions } from './sqlite-relay-store.ts';
export { SqliteRelayStore } from './sqlite-relay-store.ts';
