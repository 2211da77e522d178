import {
  type Action,
  type Address,
  type Caller,
  type DocAddress,
  type DocName,
  docAddress,
  isEncryptedScope,
  isLevel,
  type Level,
  type ModGrant,
  type ModName,
  type ObjectMeta,
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
import type { AccessControl } from './access-control.ts';
import type { AuditLog, AuditVerification } from './audit-log.ts';
import { type DeviceRegistration, parsePublicKey, type Registration, registerDevice } from './credentials.ts';
import type { DocHub } from './documents/doc-hub.ts';
import type { EventBus } from './events/event-bus.ts';
import { RUNTIME_ORIGIN } from './events/relay-events.ts';
import type { KeyedMutex } from './keyed-mutex.ts';
import { removeObject } from './remove-object.ts';
import { parseUserValue, readUserValue, writeUserValue } from './userdata-value.ts';

/** A stored value with the relay's metadata, as the runtime returns it. */
export interface RuntimeValue {
  readonly value: Record<string, unknown>;
  /** The document's head seq: it increases with every committed write. */
  readonly version: number;
  readonly owner: string;
  readonly read: ReadFlag;
  readonly write: WriteFlag;
}

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
  readonly access: AccessControl;
  readonly audit: AuditLog;
  readonly store: RelayStore;
  readonly hub: DocHub;
  /** The relay's domain events, e.g. to announce a removed document. */
  readonly bus: EventBus;
  readonly mutex: KeyedMutex;
  readonly refreshAccess: (name: DocName) => Promise<void>;
  /** Called after a user's level changed, to re-check their live subscriptions; never rejects. */
  readonly levelChanged?: ((userId: UserId, level: Level) => Promise<void>) | undefined;
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
  readonly #access: AccessControl;
  readonly #audit: AuditLog;
  readonly #store: RelayStore;
  readonly #hub: DocHub;
  readonly #bus: EventBus;
  readonly #mutex: KeyedMutex;
  readonly #refreshAccess: (name: DocName) => Promise<void>;
  readonly #levelChanged: ((userId: UserId, level: Level) => Promise<void>) | undefined;
  readonly #now: () => number;
  readonly #mods = new Map<string, ModHandle>();

  constructor(options: RelayRuntimeOptions) {
    this.#access = options.access;
    this.#audit = options.audit;
    this.#store = options.store;
    this.#hub = options.hub;
    this.#bus = options.bus;
    this.#mutex = options.mutex;
    this.#refreshAccess = options.refreshAccess;
    this.#levelChanged = options.levelChanged;
    this.#now = options.now ?? Date.now;
  }

  // --- authoritative -------------------------------------------------------------------

  /** The value at `address` (a doc name or address), or null when absent. No checks. */
  async get(address: string | DocAddress): Promise<RuntimeValue | null> {
    const doc = plaintextDoc(address);
    return this.#read(doc);
  }

  /** Replaces the value at `address`. No checks; new objects are system-owned at read 0 / write 0 unless told otherwise. */
  async set(
    address: string | DocAddress,
    value: Record<string, unknown>,
    options: AuthoritativeWriteOptions = {},
  ): Promise<RuntimeValue> {
    const doc = plaintextDoc(address);
    return this.#write(RUNTIME, doc, parseUserValue(value), options, options.owner);
  }

  /** Deletes the object at `address` (any scope; USER_PRIVATE too); false when there was none. */
  async delete(address: string | DocAddress): Promise<boolean> {
    const doc = typeof address === 'string' ? parseDocName(address) : address;
    return this.#delete(doc);
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
    const { decision } = await this.#access.check(caller, 'read', address, { channel: 'runtime' });
    if (!decision.allowed) {
      if (decision.hideExistence) return null;
      throw new SyncError('Forbidden', decision.reason);
    }
    if (isEncryptedScope(address.scope))
      throw new SyncError('BadRequest', 'USER_PRIVATE is end-to-end encrypted');
    return this.#read(address);
  }

  /** Writes a user's data as `requestingUserId` would over HTTP: decided and audited. Forbidden when not allowed. */
  async setUserData(
    request: UserDataRequest & { readonly value: Record<string, unknown> } & RuntimeWriteOptions,
  ): Promise<RuntimeValue> {
    const { caller, address } = onBehalf(request);
    const value = parseUserValue(request.value);
    return this.#mutex.run(address.name, async () => {
      await this.#require(caller, 'write', address);
      if (isEncryptedScope(address.scope))
        throw new SyncError('BadRequest', 'USER_PRIVATE is end-to-end encrypted');
      return this.#writeLocked(caller, address, value, request, undefined);
    });
  }

  /** Deletes a user's data as `requestingUserId` would over HTTP: decided and audited. */
  async deleteUserData(request: UserDataRequest): Promise<boolean> {
    const { caller, address } = onBehalf(request);
    const { decision } = await this.#access.check(caller, 'delete', address, { channel: 'runtime' });
    if (!decision.allowed) {
      if (decision.hideExistence) return false;
      throw new SyncError('Forbidden', decision.reason);
    }
    return this.#delete(address);
  }

  // --- users and audit -----------------------------------------------------------------

  /** Registers a device as a new user (any level) and returns its only copy of the API key. */
  createUser(registration: DeviceRegistration): Promise<Registration> {
    return registerDevice(this.#store, registration, this.#now());
  }

  /**
   * Sets a user's level; NotFound when there is no such user. Applies at once: the next request
   * sees it, and the user's live sync subscriptions are re-checked at the new level before this
   * resolves.
   */
  async setLevel(userId: string, level: Level): Promise<void> {
    if (!isLevel(level)) throw new SyncError('BadRequest', 'level must be 0, 1, 5 or 10');
    const id = parseUserId(userId);
    if (!(await this.#store.setUserLevel(id, level))) throw new SyncError('NotFound', `no user ${userId}`);
    await this.#levelChanged?.(id, level);
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
      get: async (key, target) => {
        const address = addressOf(key, target);
        await this.#require(await caller(), 'read', address);
        return this.#read(address);
      },
      set: async (key, value, options = {}) => {
        const address = addressOf(key, options);
        const v = parseUserValue(value);
        const c = await caller();
        return this.#mutex.run(address.name, async () => {
          await this.#require(c, 'write', address);
          return this.#writeLocked(c, address, v, options, undefined);
        });
      },
      delete: async (key, target) => {
        const address = addressOf(key, target);
        await this.#require(await caller(), 'delete', address);
        return this.#delete(address);
      },
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
        await this.#require(await caller(), 'list', address);
        return this.list('MOD_DATA', namespace, prefix);
      },
    };
  }

  // --- shared steps --------------------------------------------------------------------

  async #require(caller: Caller, action: Action, address: DocAddress): Promise<void> {
    const { decision } = await this.#access.check(caller, action, address, { channel: 'runtime' });
    if (!decision.allowed) throw new SyncError('Forbidden', decision.reason);
  }

  async #read(address: DocAddress): Promise<RuntimeValue | null> {
    const object = await this.#access.loadObject(address);
    if (!object) return null;
    const value = await this.#hub.read(address.name, readUserValue);
    return this.#valueAt(address.name, value, object);
  }

  /** `value` as the runtime returns it: with the object's owner and flags, at the document's head. */
  async #valueAt(name: DocName, value: Record<string, unknown>, meta: ObjectMeta): Promise<RuntimeValue> {
    const version = await this.#hub.head(name);
    return { value, version, owner: meta.owner, read: meta.read, write: meta.write };
  }

  #write(
    caller: Caller,
    address: DocAddress,
    value: Record<string, unknown>,
    options: RuntimeWriteOptions,
    owner: string | undefined,
  ): Promise<RuntimeValue> {
    return this.#mutex.run(address.name, () => this.#writeLocked(caller, address, value, options, owner));
  }

  /** A write, with the object's mutex held. */
  async #writeLocked(
    caller: Caller,
    address: DocAddress,
    value: Record<string, unknown>,
    options: RuntimeWriteOptions,
    owner: string | undefined,
  ): Promise<RuntimeValue> {
    const before = await this.#access.loadObject(address);
    if (options.ifVersion !== undefined) {
      const current = before ? await this.#hub.head(address.name) : 0;
      if (current !== options.ifVersion) {
        throw new SyncError('PreconditionFailed', `the version is ${current}, not ${options.ifVersion}`);
      }
    }
    let meta = await this.#access.prepareWrite(caller, address, { read: options.read, write: options.write });
    if (owner !== undefined && owner !== meta.owner) {
      await this.#store.updateObject(address.name, { owner });
      meta = { ...meta, owner };
    }
    // Subscribers who lost access are cut off before the new value is broadcast.
    if (before && (before.read !== meta.read || before.write !== meta.write || before.owner !== meta.owner)) {
      await this.#refreshAccess(address.name);
    }
    await this.#hub.transact(address.name, (doc) => writeUserValue(doc, value), RUNTIME_ORIGIN);
    // Created: subscriptions waiting for it (absent until now) may read it now.
    if (!before) await this.#refreshAccess(address.name);
    return this.#valueAt(address.name, value, meta);
  }

  async #delete(address: Address): Promise<boolean> {
    const removal = {
      store: this.#store,
      hub: this.#hub,
      bus: this.#bus,
      refreshAccess: this.#refreshAccess,
    };
    return this.#mutex.run(address.name, () => removeObject(removal, address.name));
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
