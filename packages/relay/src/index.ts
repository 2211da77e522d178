// The RelayStore contract lives in core so that store-sqlite can implement it; re-exported for the relay's users.
export type {
  AuditChannel,
  AuditHead,
  AuditQuery,
  AuditRecord,
  BlobWrite,
  KeyGrantRecord,
  KeyRecord,
  ObjectListing,
  ObjectPatch,
  ObjectRecord,
  RelayStore,
  ShareRecord,
  UserKeys,
  UserRecord,
  WrappedKeyRecord,
} from '@scopesync/core';
export type { AccessCheckOptions, AccessControlOptions, UserCaller } from './access-control.ts';
export { AccessControl } from './access-control.ts';
export type { AuditAnchor, AuditAnchorKeeperOptions } from './audit-anchor.ts';
export {
  AUDIT_ANCHOR_FILE,
  AUDIT_KEY_FILE,
  AuditAnchorKeeper,
  loadOrCreateAuditKey,
  readAuditAnchor,
  readAuditKey,
  writeAuditAnchor,
} from './audit-anchor.ts';
export type {
  AuditAnchorPoint,
  AuditEvent,
  AuditLogOptions,
  AuditVerification,
  AuditVerifyOptions,
} from './audit-log.ts';
export {
  AuditLog,
  auditId,
  GENESIS_HASH,
  hashAuditEntry,
  KEYED_HASH_PREFIX,
  sealAuditEntry,
  verifyAuditChain,
} from './audit-log.ts';
export type { JwtAuthOptions, JwtClaimsOptions, JwtKeySource, VerifiedToken } from './auth/jwt-verifier.ts';
export { isJwtShaped, JwtVerifier, userIdForSubject } from './auth/jwt-verifier.ts';
export type { AttachOptions } from './auth/mount.ts';
export { BEARER_PROTOCOL_PREFIX, SYNC_SUBPROTOCOL, subprotocolsFor } from './auth/subprotocol.ts';
export type { ChallengeStore } from './challenge-store.ts';
export { MemoryChallengeStore } from './challenge-store.ts';
export type { ClusterEvent, ClusterEventType } from './cluster/cluster-codec.ts';
export { decodeClusterEvents, encodeClusterEvent, encodeClusterEvents } from './cluster/cluster-codec.ts';
export { DEFAULT_LEASE_MS } from './cluster/cluster-lease.ts';
export type { ClusterLinkOptions } from './cluster/cluster-link.ts';
export { ClusterLink } from './cluster/cluster-link.ts';
export type { ClusterTransport } from './cluster/cluster-transport.ts';
export type { RedisRateLimitOptions } from './cluster/redis-rate-limit.ts';
export { RedisRateLimitBuckets } from './cluster/redis-rate-limit.ts';
export type { RedisTransportOptions } from './cluster/redis-transport.ts';
export { RedisTransport } from './cluster/redis-transport.ts';
export type { DeviceRegistration, Registration } from './credentials.ts';
export {
  apiKeyOf,
  generateApiKey,
  hashApiKey,
  isApiKeyShaped,
  issueApiKey,
  newUserId,
  parseDeviceName,
  parsePublicKey,
  registerDevice,
} from './credentials.ts';
export type { DocFeedOptions, ReplicaTarget } from './documents/doc-feed.ts';
export { DocFeed } from './documents/doc-feed.ts';
export type {
  DocHubOptions,
  EncryptedPage,
  EncryptedWriteContext,
  EnvelopeVerifier,
  PendingWrite,
} from './documents/doc-hub.ts';
export { DocHub } from './documents/doc-hub.ts';
export type { DocHold } from './documents/doc-registry.ts';
export { validateUpdate } from './documents/yjs-log.ts';
export type { EnvelopePolicyOptions } from './envelope-policy.ts';
export { createEnvelopeVerifier } from './envelope-policy.ts';
export type { EventBus, RelayEventHandler } from './events/event-bus.ts';
export type { EventBusLog, LocalEventBusOptions } from './events/local-event-bus.ts';
export { LocalEventBus } from './events/local-event-bus.ts';
export type {
  AccessChanged,
  AwarenessChanged,
  ChangeOrigin,
  CredentialRevoked,
  DocCommitted,
  DocRemoved,
  DocUpdated,
  EnvelopeAppended,
  LevelChanged,
  RelayEvent,
  RelayEventOf,
  RelayEventType,
} from './events/relay-events.ts';
export { HTTP_ORIGIN, orderingKeyOf, RUNTIME_ORIGIN } from './events/relay-events.ts';
export { ClientAddress, trustedProxyProblem } from './http/client-address.ts';
export type { HttpApiOptions } from './http/http-api.ts';
export { HttpApi } from './http/http-api.ts';
export type { StaticFilesOptions } from './http/static-files.ts';
export { StaticFiles, staticRootProblem } from './http/static-files.ts';
export { instrumentRelayStore } from './instrumented-relay-store.ts';
export type { IssuedChallenge, KeyChallengesOptions } from './key-proof.ts';
export { KeyChallenges, keyProofMessage } from './key-proof.ts';
export { MemoryRelayStore } from './memory-relay-store.ts';
export type { Counter, Gauge, Histogram, LabeledCounter } from './metrics.ts';
export { Metrics } from './metrics.ts';
export type { RateLimitBuckets, RateLimitOptions, RateVerdict } from './rate-limiter.ts';
export { DEFAULT_RATE_LIMIT, RateLimiter } from './rate-limiter.ts';
export { createRelay, Relay } from './relay.ts';
export type { RelayAddress } from './relay-listener.ts';
export type { RelayLog, RelayLogLevel } from './relay-log.ts';
export { consoleRelayLog, RELAY_LOG_LEVELS } from './relay-log.ts';
export type {
  RelayAuditOptions,
  RelayAuthOptions,
  RelayCluster,
  RelayLimits,
  RelayOptions,
  RelayStores,
} from './relay-options.ts';
export { DEFAULT_SQLITE_CACHE_KIB, DOCS_DB_FILE, RELAY_DB_FILE } from './relay-stores.ts';
export type {
  AuthoritativeWriteOptions,
  ModContext,
  ModDefinition,
  ModGrantDeclaration,
  ModHandle,
  ModTarget,
  RelayRuntimeOptions,
  RuntimeValue,
  RuntimeWriteOptions,
  UserDataRequest,
} from './runtime.ts';
export { RelayRuntime } from './runtime.ts';
export type { AccountServiceOptions, IssueKeyOptions } from './services/account-service.ts';
export { AccountService } from './services/account-service.ts';
export type { BlobBytesWrite, BlobServiceOptions } from './services/blob-service.ts';
export { BlobService, ENCRYPTED_HEADER } from './services/blob-service.ts';
export { deniedError } from './services/denied-error.ts';
export type {
  ObjectServiceOptions,
  PreparedWrite,
  StoredValue,
  ValueWriteOptions,
} from './services/object-service.ts';
export { ObjectService } from './services/object-service.ts';
export type { ShareServiceOptions } from './services/share-service.ts';
export { ShareService } from './services/share-service.ts';
export { SyncAccess } from './services/sync-access.ts';
export type { CheckedAccess, CheckOptions, RequestedFlags, SyncAuthority } from './sync/sync-authority.ts';
export type { SyncLog } from './sync/sync-log.ts';
export { consoleSyncLog } from './sync/sync-log.ts';
export type { SyncServerLimits, SyncServerOptions } from './sync/sync-server.ts';
export { DEFAULT_SYNC_LIMITS, SyncServer } from './sync/sync-server.ts';
export { parseUserValue, readUserValue, USERDATA_MAP, writeUserValue } from './userdata-value.ts';
