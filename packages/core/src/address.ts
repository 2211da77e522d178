import { SyncError } from './errors.ts';

/** The storage scopes. Each decides who may read and write the documents in it (see `decide`). */
export const Scope = {
  PUBLIC_READ: 'PUBLIC_READ',
  PUBLIC_RW: 'PUBLIC_RW',
  USER_PUBLIC: 'USER_PUBLIC',
  USER_PRIVATE: 'USER_PRIVATE',
  SERVER_SCOPE: 'SERVER_SCOPE',
  MOD_DATA: 'MOD_DATA',
} as const;

/** One of the scopes in {@link Scope}. */
export type Scope = (typeof Scope)[keyof typeof Scope];

/** Every scope, in a stable order. */
export const SCOPES: readonly Scope[] = Object.values(Scope);

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A validated user id: `user_` followed by 16 lowercase hex characters. */
export type UserId = Brand<string, 'UserId'>;
/** A validated document name: `<SCOPE>/<namespace>/<key>` or `blob/<blob_id>`. */
export type DocName = Brand<string, 'DocName'>;
/** A validated blob id (same grammar as a key). */
export type BlobId = Brand<string, 'BlobId'>;
/** A validated mod name. */
export type ModName = Brand<string, 'ModName'>;

/** The owner of system objects: the nil UUID. */
export const SYSTEM_OWNER = '00000000-0000-0000-0000-000000000000';
/** The namespace of the system scopes PUBLIC_READ, PUBLIC_RW and SERVER_SCOPE. */
export const SYSTEM_NAMESPACE = '_';
/** Longest key or blob id, in characters. */
export const MAX_KEY_LENGTH = 256;

const USER_ID = /^user_[0-9a-f]{16}$/;
const MOD_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const KEY_CHARS = /^[A-Za-z0-9._~:@/-]+$/;

/** Scopes whose namespace is a user id. */
const USER_SCOPES: ReadonlySet<Scope> = new Set<Scope>(['USER_PUBLIC', 'USER_PRIVATE']);
/** Scopes whose namespace is the system namespace `_`. */
const SYSTEM_SCOPES: ReadonlySet<Scope> = new Set<Scope>(['PUBLIC_READ', 'PUBLIC_RW', 'SERVER_SCOPE']);

/** A parsed address of a scoped document. */
export interface DocAddress {
  readonly kind: 'doc';
  readonly scope: Scope;
  /** A user id for USER_* scopes, a mod name for MOD_DATA, `_` for the system scopes. */
  readonly namespace: string;
  readonly key: string;
  readonly name: DocName;
}

/** A parsed address of a blob. */
export interface BlobAddress {
  readonly kind: 'blob';
  readonly blobId: BlobId;
  readonly name: DocName;
}

/** Any addressable thing: a scoped document or a blob. */
export type Address = DocAddress | BlobAddress;

function bad(message: string): SyncError {
  return new SyncError('BadRequest', message);
}

/** True when `value` is one of the scope names. */
export function isScope(value: unknown): value is Scope {
  return typeof value === 'string' && Object.hasOwn(Scope, value);
}

/** Parses a scope name; throws BadRequest for anything else. */
export function parseScope(value: string): Scope {
  if (!isScope(value)) throw bad(`unknown scope ${JSON.stringify(value.slice(0, 40))}`);
  return value;
}

/** Parses a user id (`user_` + 16 lowercase hex); throws BadRequest for anything else. */
export function parseUserId(value: string): UserId {
  if (!USER_ID.test(value)) throw bad('user id must be "user_" followed by 16 lowercase hex characters');
  return value as UserId;
}

/** True when `value` is a well-formed user id. */
export function isUserId(value: unknown): value is UserId {
  return typeof value === 'string' && USER_ID.test(value);
}

/** Parses a mod name (a letter, then up to 63 letters, digits, `_` or `-`); throws BadRequest otherwise. */
export function parseModName(value: string): ModName {
  if (!MOD_NAME.test(value)) throw bad('mod name must be a letter followed by up to 63 of [A-Za-z0-9_-]');
  return value as ModName;
}

/**
 * Parses a key: 1–256 characters of `[A-Za-z0-9._~:@/-]` with no empty, `.` or `..`
 * segment between slashes. Throws BadRequest otherwise, so a key can never become a path.
 */
export function parseKey(value: string, what = 'key'): string {
  if (value.length === 0) throw bad(`${what} must not be empty`);
  if (value.length > MAX_KEY_LENGTH) throw bad(`${what} is longer than ${MAX_KEY_LENGTH} characters`);
  if (!KEY_CHARS.test(value)) throw bad(`${what} may only contain A-Z a-z 0-9 . _ ~ : @ / -`);
  for (const segment of value.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw bad(`${what} must not contain an empty, "." or ".." segment`);
    }
  }
  return value;
}

/** Parses a blob id (same grammar as a key); throws BadRequest otherwise. */
export function parseBlobId(value: string): BlobId {
  return parseKey(value, 'blob id') as BlobId;
}

/** Checks that `namespace` fits `scope`: a user id, a mod name, or `_`. Throws BadRequest otherwise. */
export function parseNamespace(scope: Scope, namespace: string): string {
  if (USER_SCOPES.has(scope)) return parseUserId(namespace);
  if (scope === 'MOD_DATA') return parseModName(namespace);
  if (namespace !== SYSTEM_NAMESPACE) throw bad(`${scope} uses the system namespace "${SYSTEM_NAMESPACE}"`);
  return namespace;
}

/** Builds a validated document address from its parts. */
export function docAddress(scope: Scope | string, namespace: string, key: string): DocAddress {
  const s = typeof scope === 'string' ? parseScope(scope) : scope;
  const ns = parseNamespace(s, namespace);
  const k = parseKey(key);
  return { kind: 'doc', scope: s, namespace: ns, key: k, name: `${s}/${ns}/${k}` as DocName };
}

/** Builds a validated blob address. */
export function blobAddress(blobId: string): BlobAddress {
  const id = parseBlobId(blobId);
  return { kind: 'blob', blobId: id, name: `blob/${id}` as DocName };
}

/** Longest document name: the longest scope, namespace and key with their slashes. */
export const MAX_DOC_NAME_LENGTH = 'USER_PRIVATE'.length + 1 + 64 + 1 + MAX_KEY_LENGTH;

/**
 * Parses a document name — `<SCOPE>/<namespace>/<key>` or `blob/<blob_id>` — into an
 * address. Throws BadRequest for anything outside the grammar.
 */
export function parseDocName(name: string): Address {
  if (typeof name !== 'string') throw bad('document name must be a string');
  if (name.length > MAX_DOC_NAME_LENGTH) throw bad('document name is too long');
  if (name.startsWith('blob/')) return blobAddress(name.slice(5));
  const first = name.indexOf('/');
  const second = first < 0 ? -1 : name.indexOf('/', first + 1);
  if (first < 0 || second < 0) throw bad('document name must be <SCOPE>/<namespace>/<key> or blob/<id>');
  return docAddress(name.slice(0, first), name.slice(first + 1, second), name.slice(second + 1));
}

/** The owner a document's namespace implies: the user for USER_* scopes, the system owner otherwise. */
export function namespaceOwner(address: DocAddress): string {
  return USER_SCOPES.has(address.scope) ? address.namespace : SYSTEM_OWNER;
}

/** True for the scopes whose namespace is a user id. */
export function isUserScope(scope: Scope): boolean {
  return USER_SCOPES.has(scope);
}

/** True for the scopes kept in the system namespace `_`. */
export function isSystemScope(scope: Scope): boolean {
  return SYSTEM_SCOPES.has(scope);
}

/** True for documents the relay must store only as ciphertext: USER_PRIVATE docs. Encrypted blobs are flagged per blob. */
export function isEncryptedScope(scope: Scope): boolean {
  return scope === 'USER_PRIVATE';
}
