import {
  type Caller,
  type DocAddress,
  type DocName,
  docAddress,
  isEncryptedScope,
  isLevel,
  isSyncError,
  type Level,
  type ModGrant,
  type ModName,
  parseDocName,
  parseModName,
  parseNamespace,
  parseScope,
  parseUserId,
  type ReadFlag,
  type RelayStore,
  SyncError,
  type UserId,
  type WriteFlag,
} from '@scopesync/core';
import type { AuditLog, AuditVerification } from './audit-log.ts';
import { type DeviceRegistration, parsePublicKey, type Registration, registerDevice } from './credentials.ts';
import { RUNTIME_ORIGIN } from './events/relay-events.ts';
import type { AccountService, IssueKeyOptions } from './services/account-service.ts';
import type { ObjectService, StoredValue, ValueWriteOptions } from './services/object-service.ts';
import { parseUserValue } from './userdata-value.ts';

/** A stored value with the relay's metadata, as the runtime returns it. */
export type RuntimeValue = StoredValue;

/** Options of an authoritative or on-behalf write. */
export interface RuntimeWriteOptions {
  /** Read flag; default: the current one, or 0 for a new object written by the runtime or a mod. */
  readonly read?: ReadFlag | undefined;
  /** Write flag; default: the current one, or 0 for a new object written by the runtime or a mod. */
  readonly write?: WriteFlag | undefined;
  /** Fails with PreconditionFailed unless the current version is this (0: must not exist). */
  readonly ifVersion?: number | undefined;
}

/** Options of an authoritative write: the runtime may also choose the owner. */
export interface AuthoritativeWriteOptions extends RuntimeWriteOptions {
  /** The owner (a user id or the system owner); default: the system for a new object, else unchanged. */
  readonly owner?: string | undefined;
}

/** Who a call on behalf of a user acts as, and what it touches (seed 000's `get_user_data`). */
export interface UserDataRequest {
  readonly requestingUserId: string;
  readonly requestingUserLevel: Level;
  readonly targetUserId: string;
  /** USER_PUBLIC, USER_PRIVATE (refused: end-to-end encrypted), or a system scope with targetUserId ignored. */
  readonly scope: string;
  readonly key: string;
}

/** A grant a mod declares on another mod's data; `source` is the declaring mod. */
export type ModGrantDeclaration = Omit<ModGrant, 'source'> & { readonly source?: string };

/** What a mod's `start` hook receives. */
export interface ModContext {
  /** The mod's own handle: its MOD_DATA and the grants it declared. */
  readonly mod: ModHandle;
  /** The authoritative runtime, for everything outside MOD_DATA. */
  readonly runtime: RelayRuntime;
}

/** A mod: server-side code registered with the relay under a name. It owns `MOD_DATA/<name>/*`. */
export interface ModDefinition {
  /** A letter, then up to 63 of `[A-Za-z0-9_-]`. */
  readonly name: string;
  /** Access this mod has to other mods' data: read (read, list), write (+ write), full (+ delete). */
  readonly grants?: readonly ModGrantDeclaration[];
  /**
   * Runs when the relay starts listening. If it returns (or resolves with) a function, the
   * relay calls that on close to stop the mod.
   */
  readonly start?: (context: ModContext) => unknown;
}

/** Which mod's data a mod call touches: its own by default. */
export interface ModTarget {
  /** Another mod's name: needs a grant that covers the action and key. */
  readonly mod?: string | undefined;
}

/**
 * A mod's view of MOD_DATA: its own namespace, and other mods' through its declared grants.
 * Every call asks `decide()` with the caller kind `mod`; cross-mod access is audited.
 */
export interface ModHandle {
  readonly name: ModName;
  /** The value at `key` (in `target.mod`'s namespace, default its own), or null when absent. */
  get(key: string, target?: ModTarget): Promise<RuntimeValue | null>;
  /** Replaces the value at `key`. New objects default to read 0 / write 0: invisible to clients. */
  set(
    key: string,
    value: Record<string, unknown>,
    options?: RuntimeWriteOptions & ModTarget,
  ): Promise<RuntimeValue>;
  /** Deletes the value at `key`; false when there was none. */
  delete(key: string, target?: ModTarget): Promise<boolean>;
  /** Keys in the namespace, optionally under a prefix, in order. */
  list(options?: ModTarget & { readonly prefix?: string }): Promise<string[]>;
}

/** Options of {@link RelayRuntime}. */
export interface RelayRuntimeOptions {
  readonly objects: ObjectService;
  readonly accounts: AccountService;
  readonly audit: AuditLog;
  readonly store: RelayStore;
  readonly now?: () => number;
}

const RUNTIME: Caller = { kind: 'runtime' };

/** Most keys {@link RelayRuntime.list} returns. */
const MAX_RUNTIME_LIST = 100_000;

/**
 * The server runtime API: code running inside the relay process. Its own calls are
 * authoritative (caller kind `runtime` bypasses every check; new objects are system-owned
 * with read 0 / write 0, so clients see them only once given read 2). `getUserData`/
 * `setUserData` act on behalf of a user: decided with that user as the caller, and audited.
 * Mods reach MOD_DATA through `mod(name)`, decided with the caller kind `mod` and their grants.
 */
export class RelayRuntime {
  readonly #objects: ObjectService;
  readonly #accounts: AccountService;
  readonly #audit: AuditLog;
  readonly #store: RelayStore;
  readonly #now: () => number;
  readonly #mods = new Map<string, ModHandle>();

  constructor(options: RelayRuntimeOptions) {
    this.#objects = options.objects;
    this.#accounts = options.accounts;
    this.#audit = options.audit;
    this.#store = options.store;
    this.#now = options.now ?? Date.now;
  }

  // --- authoritative -------------------------------------------------------------------

  /** The value at `address` (a doc name or address), or null when absent. No checks. */
  async get(address: string | DocAddress): Promise<RuntimeValue | null> {
    return this.#objects.readValue(RUNTIME, plaintextDoc(address), 'runtime');
  }

  /** Replaces the value at `address`. No checks; new objects are system-owned at read 0 / write 0 unless told otherwise. */
  async set(
    address: string | DocAddress,
    value: Record<string, unknown>,
    options: AuthoritativeWriteOptions = {},
  ): Promise<RuntimeValue> {
    return this.#write(RUNTIME, plaintextDoc(address), value, options);
  }

  /** Deletes the object at `address` (any scope; USER_PRIVATE too); false when there was none. */
  async delete(address: string | DocAddress): Promise<boolean> {
    const doc = typeof address === 'string' ? parseDocName(address) : address;
    return this.#objects.remove(RUNTIME, doc, 'runtime');
  }

  /** Every key in `<scope>/<namespace>/`, optionally under `prefix`, in order. No checks. */
  async list(scope: string, namespace: string, prefix = ''): Promise<string[]> {
    const s = parseScope(scope);
    const base = `${s}/${parseNamespace(s, namespace)}/`;
    const rows = await this.#store.listObjects({ prefix: `${base}${prefix}`, limit: MAX_RUNTIME_LIST });
    return rows.map((r) => r.name.slice(base.length));
  }

  // --- on behalf of a user -------------------------------------------------------------

  /**
   * Reads a user's data as `requestingUserId` at `requestingUserLevel` would over HTTP:
   * decided and audited (channel `runtime`). Null when absent or hidden from that user;
   * Forbidden/BadRequest otherwise.
   */
  async getUserData(request: UserDataRequest): Promise<RuntimeValue | null> {
    const { caller, address } = onBehalf(request);
    if (isEncryptedScope(address.scope))
      throw new SyncError('BadRequest', 'USER_PRIVATE is end-to-end encrypted');
    return hiddenAs(null, () => this.#objects.readValue(caller, address, 'runtime'));
  }

  /** Writes a user's data as `requestingUserId` would over HTTP: decided and audited. Forbidden when not allowed. */
  async setUserData(
    request: UserDataRequest & { readonly value: Record<string, unknown> } & RuntimeWriteOptions,
  ): Promise<RuntimeValue> {
    const { caller, address } = onBehalf(request);
    return this.#write(caller, address, request.value, request);
  }

  /** Deletes a user's data as `requestingUserId` would over HTTP: decided and audited. */
  async deleteUserData(request: UserDataRequest): Promise<boolean> {
    const { caller, address } = onBehalf(request);
    return hiddenAs(false, () => this.#objects.remove(caller, address, 'runtime'));
  }

  // --- users and audit -----------------------------------------------------------------

  /** Registers a device as a new user (any level) and returns its only copy of the API key. */
  createUser(registration: DeviceRegistration): Promise<Registration> {
    return registerDevice(this.#store, registration, this.#now());
  }

  /**
   * Issues a new API key for an EXISTING user (`{ key, userId }`; the key is shown only here, the
   * relay keeps its hash): how an app gives its users keys when registration is closed, or a
   * server-side client a key of its own. NotFound for an unknown user.
   */
  issueKey(userId: string, options: IssueKeyOptions = {}): Promise<Registration> {
    return this.#accounts.issueKey(userId, options);
  }

  /**
   * Sets a user's level; NotFound when there is no such user. Applies at once: the next request
   * sees it, and the user's live sync subscriptions are re-checked at the new level before this
   * resolves.
   */
  setLevel(userId: string, level: Level): Promise<void> {
    return this.#accounts.setLevel(userId, level);
  }

  /**
   * Replaces a user's registered public keys without a proof of possession (authoritative: e.g.
   * an admin resetting a user who lost their recovery phrase). Keys are base64 or base64url, 32
   * bytes; null removes one. NotFound for an unknown user, Conflict when another user holds
   * `signPk`. Envelopes already stored stay; new ones must be signed by the new key.
   */
  async setUserKeys(userId: string, keys: { signPk: string | null; boxPk: string | null }): Promise<void> {
    const id = parseUserId(userId);
    const stored = {
      signPk: parsePublicKey(keys.signPk, 'signPk'),
      boxPk: parsePublicKey(keys.boxPk, 'boxPk'),
    };
    if (!(await this.#store.setUserKeys(id, stored))) throw new SyncError('NotFound', `no user ${userId}`);
  }

  /** Walks the audit log's hash chain. */
  verifyAudit(): Promise<AuditVerification> {
    return this.#audit.verify();
  }

  // --- mods ----------------------------------------------------------------------------

  /** Registers a mod and stores its declared grants (replacing earlier ones); resolves with its handle. */
  async registerMod(definition: ModDefinition): Promise<ModHandle> {
    const name = parseModName(definition.name);
    if (this.#mods.has(name)) throw new SyncError('Conflict', `mod ${name} is already registered`);
    const grants = (definition.grants ?? []).map((g) => normalizeGrant(name, g));
    await this.#store.replaceGrants(name, grants);
    const handle = this.#modHandle(name);
    this.#mods.set(name, handle);
    return handle;
  }

  /** The handle of a registered mod; NotFound for an unknown name. */
  mod(name: string): ModHandle {
    const handle = this.#mods.get(name);
    if (!handle) throw new SyncError('NotFound', `no mod ${name} is registered`);
    return handle;
  }

  /** Names of the registered mods. */
  get mods(): string[] {
    return [...this.#mods.keys()];
  }

  #modHandle(name: ModName): ModHandle {
    const caller = async (): Promise<Caller> => ({
      kind: 'mod',
      mod: name,
      grants: await this.#store.listGrants(name),
    });
    const addressOf = (key: string, target?: ModTarget): DocAddress =>
      docAddress('MOD_DATA', target?.mod ?? name, key);
    return {
      name,
      get: async (key, target) => this.#objects.readValue(await caller(), addressOf(key, target), 'runtime'),
      set: async (key, value, options = {}) =>
        this.#write(await caller(), addressOf(key, options), value, options),
      delete: async (key, target) => this.#objects.remove(await caller(), addressOf(key, target), 'runtime'),
      list: async (options = {}) => {
        const namespace = options.mod ?? name;
        const prefix = options.prefix ?? '';
        const base = docAddress('MOD_DATA', namespace, 'list');
        // The namespace as a whole: decide() looks only at the namespace for a list.
        const address: DocAddress = {
          ...base,
          key: prefix,
          name: `MOD_DATA/${base.namespace}/${prefix}` as DocName,
        };
        await this.#objects.require(await caller(), 'list', address, 'runtime');
        return this.list('MOD_DATA', namespace, prefix);
      },
    };
  }

  // --- shared steps --------------------------------------------------------------------

  #write(
    caller: Caller,
    address: DocAddress,
    value: Record<string, unknown>,
    options: ValueWriteOptions,
  ): Promise<RuntimeValue> {
    const v = parseUserValue(value);
    const { read, write, ifVersion, owner } = options;
    return this.#objects.writeValue(
      caller,
      address,
      v,
      { read, write, ifVersion, owner },
      'runtime',
      RUNTIME_ORIGIN,
    );
  }
}

/** Runs `fn`; a denial that hides existence (NotFound) answers `absent` instead, as for an absent object. */
async function hiddenAs<T>(absent: T, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (isSyncError(error, 'NotFound')) return absent;
    throw error;
  }
}

/** A plaintext document address: the runtime cannot read or write USER_PRIVATE values (ciphertext) or blobs' bytes here. */
function plaintextDoc(address: string | DocAddress): DocAddress {
  const parsed = typeof address === 'string' ? parseDocName(address) : address;
  if (parsed.kind !== 'doc')
    throw new SyncError('BadRequest', 'the value API works on scoped documents, not blobs');
  if (isEncryptedScope(parsed.scope))
    throw new SyncError('BadRequest', 'USER_PRIVATE is end-to-end encrypted');
  return parsed;
}

function onBehalf(request: UserDataRequest): { caller: Caller; address: DocAddress } {
  if (!isLevel(request.requestingUserLevel))
    throw new SyncError('BadRequest', 'requestingUserLevel must be 0, 1, 5 or 10');
  const scope = parseScope(request.scope);
  if (scope === 'MOD_DATA')
    throw new SyncError('BadRequest', 'users never reach MOD_DATA: use runtime.mod(name)');
  const namespace = scope === 'USER_PUBLIC' || scope === 'USER_PRIVATE' ? request.targetUserId : '_';
  const address = docAddress(scope, namespace, request.key);
  const userId: UserId = parseUserId(request.requestingUserId);
  return { caller: { kind: 'user', userId, level: request.requestingUserLevel }, address };
}

function normalizeGrant(source: ModName, grant: ModGrantDeclaration): ModGrant {
  if (grant.source !== undefined && grant.source !== source) {
    throw new SyncError(
      'BadRequest',
      `mod ${source} declares a grant for ${grant.source}: a mod declares only its own`,
    );
  }
  const target = parseModName(grant.target);
  if (grant.permission !== 'read' && grant.permission !== 'write' && grant.permission !== 'full') {
    throw new SyncError('BadRequest', 'a grant permission is read, write or full');
  }
  if (
    grant.keys !== undefined &&
    (!Array.isArray(grant.keys) || grant.keys.some((k) => typeof k !== 'string'))
  ) {
    throw new SyncError('BadRequest', 'grant keys must be strings');
  }
  if (grant.expiresAt !== undefined && !Number.isFinite(grant.expiresAt)) {
    throw new SyncError('BadRequest', 'expiresAt must be epoch milliseconds');
  }
  return {
    source,
    target,
    permission: grant.permission,
    ...(grant.keys === undefined ? {} : { keys: [...grant.keys] }),
    ...(grant.expiresAt === undefined ? {} : { expiresAt: grant.expiresAt }),
  };
}
