// What an app branches on, from the contract the client shares with the relay.
export type { DocAccess } from '@scopesync/core';
export { ErrorKind, isSyncError, SyncError } from '@scopesync/core';
export type { AuditEntry, AuditPage, AuditQuery } from './audit.ts';
export type { BackoffOptions } from './backoff.ts';
export { backoffDelay, DEFAULT_BACKOFF } from './backoff.ts';
export type {
  BlobContent,
  BlobCreateOptions,
  BlobMeta,
  BlobPutOptions,
  BlobShare,
  BlobShareOptions,
  CreatedBlob,
  IncomingBlobShare,
} from './blobs.ts';
export { Blobs } from './blobs.ts';
export type { ClientStore } from './client-store.ts';
export { defaultClientStore, indexedDbClientStore, KV_TABLES, memoryClientStore } from './client-store.ts';
export type { ConnectionStatus, LivenessOptions, WebSocketClass, WebSocketLike } from './connection.ts';
export { DEFAULT_LIVENESS, NO_ANSWER_CLOSE } from './connection.ts';
export type { ClientOptions } from './create-client.ts';
export { createClient } from './create-client.ts';
export type { DocCipher, DocCipherProvider } from './doc-cipher.ts';
export type { DocFlags } from './doc-flags.ts';
export { DocHandle } from './doc-handle.ts';
export type { DocHandleEvents } from './doc-handle-events.ts';
export type { DocOrigin } from './doc-origin.ts';
export { DOC_ORIGINS, docOriginOf } from './doc-origin.ts';
export type {
  DocProviderEvents,
  ProviderBinding,
  ProviderConnection,
  ProviderStatus,
} from './doc-provider.ts';
export { DocProvider } from './doc-provider.ts';
export { Encryption } from './encryption.ts';
export type { FollowSweepResult } from './follow-sweep.ts';
export type { FetchFunction } from './http-api.ts';
export type { IdentityRotationResult } from './identity-rotation.ts';
export type { IndexedDbOptions } from './indexed-db-database.ts';
export { DEFAULT_DATABASE_NAME, ScopesyncDatabase } from './indexed-db-database.ts';
export { IndexedDbDocStore } from './indexed-db-doc-store.ts';
export { IndexedDbKeyValueStore } from './indexed-db-key-value-store.ts';
export type { PublicKeys } from './key-api.ts';
export type { ValueErrorListener, ValueListener, ValueMeta, ValueSource } from './live-value.ts';
export type { DocMeta } from './local-doc-log.ts';
export type { ThisDevice } from './own-devices.ts';
export type { SeedLocation } from './seed-store.ts';
export type { DocOptions, SyncClientEvents } from './sync-client.ts';
export { SyncClient } from './sync-client.ts';
export type { FollowFailedEvent, KeyChangedEvent, TamperEvent, TamperKind, TrustEvents } from './trust.ts';
export { Trust } from './trust.ts';
export type { Unsubscribe } from './typed-events.ts';
export type { JsonObject, JsonValue, UserDataListOptions, UserDataWriteOptions } from './user-data.ts';
export { DATA_MAP, UserData } from './user-data.ts';
