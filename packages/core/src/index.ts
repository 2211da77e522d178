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
export { isLevel, Level } from './levels.ts';
export { MemoryDocStore } from './memory-doc-store.ts';
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
  isShareLevel,
  ownerForCreate,
  RUNTIME_DEFAULT_FLAGS,
  SCOPE_FLAGS,
} from './rules.ts';
