export type { Address, BlobAddress, BlobId, DocAddress, DocName, ModName, UserId } from './address.ts';
export {
  blobAddress,
  docAddress,
  isEncryptedScope,
  isScope,
  isSystemScope,
  isUserId,
  isUserScope,
  MAX_DOC_NAME_LENGTH,
  MAX_KEY_LENGTH,
  namespaceOwner,
  parseBlobId,
  parseDocName,
  parseKey,
  parseModName,
  parseNamespace,
  parseScope,
  parseUserId,
  SCOPES,
  Scope,
  SYSTEM_NAMESPACE,
  SYSTEM_OWNER,
} from './address.ts';
export type { AppendItem, DocStore, StoredEntry } from './doc-store.ts';
export {
  assert,
  ErrorKind,
  httpStatusOf,
  isErrorKind,
  isSyncError,
  kindOfHttpStatus,
  kindOfWsCloseCode,
  SyncError,
  unreachable,
  wsCloseCodeOf,
} from './errors.ts';
export type { KeyValueStore, KvEntry, KvOp, KvValue } from './key-value-store.ts';
export { KeyedMutex } from './keyed-mutex.ts';
export { isLevel, Level } from './levels.ts';
export type { Locks } from './locks.ts';
export { MemoryDocStore } from './memory-doc-store.ts';
export { MemoryKeyValueStore } from './memory-key-value-store.ts';
export type {
  AuditChannel,
  AuditHead,
  AuditQuery,
  AuditRecord,
  BlobWrite,
  DeviceListRecord,
  ImmediateRelayReads,
  KeyGrantRecord,
  KeyHolder,
  KeyRecord,
  MemberListRecord,
  ObjectListing,
  ObjectPatch,
  ObjectRecord,
  RelayStore,
  RelayStoreTx,
  RetiredKeyRecord,
  ShareRecord,
  SignedHeadRecord,
  UserKeys,
  UserRecord,
  WrappedKeyRecord,
} from './relay-store.ts';
export { forwardRelayStoreTx, RELAY_STORE_TX_METHODS } from './relay-store.ts';
export type {
  AccessRequest,
  Action,
  Caller,
  Decision,
  ModGrant,
  ObjectMeta,
  ReadFlag,
  ShareLevel,
  WriteFlag,
} from './rules.ts';
export {
  ACTIONS,
  callerId,
  decide,
  flagsForWrite,
  HIDDEN_REASON,
  isShareLevel,
  ownerForCreate,
  RUNTIME_DEFAULT_FLAGS,
  SCOPE_FLAGS,
} from './rules.ts';
export type { AsyncContext, TransactionTicket } from './transaction-gate.ts';
export { TransactionGate } from './transaction-gate.ts';
export { userIdOfSigningKey } from './user-id.ts';
export { decodeDocFrame, decodeMuxFrame, encodeDocFrame, encodeMuxFrame } from './wire/frame.ts';
export type {
  AckMessage,
  AwarenessMessage,
  EncAppendMessage,
  EncEntriesMessage,
  EncEntry,
  EncFetchMessage,
  EncSnapshotMessage,
  ErrorMessage,
  Message,
  MessageOfType,
  MuxFrame,
  PermissionDeniedMessage,
  PermissionMessage,
  PingMessage,
  PongMessage,
  QueryAwarenessMessage,
  ScopesyncMessage,
  SubscribeMessage,
  SyncStep1Message,
  SyncStep2Message,
  SyncUpdateMessage,
  TrackedUpdateMessage,
  UnsubscribeMessage,
  YProtocolsMessage,
} from './wire/message.ts';
export {
  isYProtocolsMessage,
  readMessage,
  readYProtocolsMessage,
  writeAck,
  writeAwareness,
  writeEncAppend,
  writeEncEntries,
  writeEncFetch,
  writeEncSnapshot,
  writeError,
  writeMessage,
  writePermission,
  writePermissionDenied,
  writePing,
  writePong,
  writeQueryAwareness,
  writeSubscribe,
  writeSyncStep1,
  writeSyncStep2,
  writeSyncUpdate,
  writeTrackedUpdate,
  writeUnsubscribe,
} from './wire/message-codec.ts';
export type { DocAccess, SubscribeMode } from './wire/message-type.ts';
export {
  AuthMessageType,
  DOC_ACCESS_LEVELS,
  KEEP_READ_FLAG,
  KEEP_WRITE_FLAG,
  MessageType,
  SUBSCRIBE_MODES,
  SyncMessageType,
} from './wire/message-type.ts';
export type { WireLimits } from './wire/wire-limits.ts';
export { DEFAULT_WIRE_LIMITS } from './wire/wire-limits.ts';
