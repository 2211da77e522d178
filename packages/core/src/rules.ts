import {
  type Address,
  type DocAddress,
  isUserScope,
  type ModName,
  namespaceOwner,
  type Scope,
  SYSTEM_OWNER,
  type UserId,
} from './address.ts';
import { SyncError } from './errors.ts';
import { Level } from './levels.ts';

/** Who is asking. The server runtime is authoritative; mods act through declared grants. */
export type Caller =
  | { readonly kind: 'guest' }
  | { readonly kind: 'user'; readonly userId: UserId; readonly level: Level }
  | { readonly kind: 'runtime' }
  | { readonly kind: 'mod'; readonly mod: ModName; readonly grants: readonly ModGrant[] };

/** What the caller wants to do. `share` manages a blob's share list (grant and revoke). */
export type Action = 'read' | 'write' | 'delete' | 'list' | 'share';

/** Every action, in a stable order. */
export const ACTIONS: readonly Action[] = ['read', 'write', 'delete', 'list', 'share'];

/** Object read permission: 0 no read, 1 owner read, 2 public read. */
export type ReadFlag = 0 | 1 | 2;
/** Object write permission: 0 no write, 1 owner write. */
export type WriteFlag = 0 | 1;

/** A blob share level. */
export type ShareLevel = 'read_only' | 'read_write';

/** True when `value` is a share level. */
export function isShareLevel(value: unknown): value is ShareLevel {
  return value === 'read_only' || value === 'read_write';
}

/** A declared mod-to-mod grant: `source` may access `target`'s MOD_DATA. */
export interface ModGrant {
  readonly source: string;
  readonly target: string;
  /** read allows read and list; write adds write; full adds delete. */
  readonly permission: 'read' | 'write' | 'full';
  /** Keys the grant covers; an entry ending in `*` is a prefix. Absent: every key. */
  readonly keys?: readonly string[];
  /** Epoch milliseconds from which on the grant denies (expired at `now >= expiresAt`). Absent: never expires. */
  readonly expiresAt?: number;
}

/** What the relay knows of an existing object. Absent when the object does not exist (yet). */
export interface ObjectMeta {
  readonly owner: string;
  readonly read: ReadFlag;
  readonly write: WriteFlag;
  /** Blob shares: user id → level. */
  readonly shares?: ReadonlyMap<string, ShareLevel>;
}

/** One question to the permission engine. */
export interface AccessRequest {
  readonly caller: Caller;
  readonly action: Action;
  readonly address: Address;
  /** The object as stored, or undefined/null when it does not exist. */
  readonly object?: ObjectMeta | null | undefined;
  /** Epoch milliseconds, for grant expiry. Defaults to Date.now(). */
  readonly now?: number;
}

/** The engine's answer. */
export interface Decision {
  readonly allowed: boolean;
  /**
   * Why, in words a developer can act on — safe to send to the caller: a denial that must
   * hide existence always reads {@link HIDDEN_REASON}, so absent and hidden look the same.
   */
  readonly reason: string;
  /** The engine's specific reason, also for hidden denials: for the relay's own logs, never for the caller. */
  readonly detail: string;
  /** The access touches data belonging to someone other than the caller (audit it). */
  readonly crossUser: boolean;
  /** Append an audit entry: every cross-user access and every denial. */
  readonly audit: boolean;
  /**
   * The denial must look like absence (404) so that it does not leak whether the object
   * exists: object-level read denials, refused deletes of objects the caller cannot read, and
   * anything on a blob the caller cannot see.
   */
  readonly hideExistence: boolean;
  /** Whose data it is: a user id, `mod:<name>`, or the system owner. */
  readonly target: string;
}

/** The one reason every denial that hides existence gives, whether the object is absent or hidden. */
export const HIDDEN_REASON = 'not found';

/** Flags a client write gets by default, and the widest a scope allows, per scope. */
export const SCOPE_FLAGS: Readonly<
  Record<
    Scope,
    {
      readonly defaults: { read: ReadFlag; write: WriteFlag };
      readonly max: { read: ReadFlag; write: WriteFlag };
    }
  >
> = {
  PUBLIC_READ: { defaults: { read: 2, write: 1 }, max: { read: 2, write: 1 } },
  PUBLIC_RW: { defaults: { read: 2, write: 1 }, max: { read: 2, write: 1 } },
  USER_PUBLIC: { defaults: { read: 2, write: 1 }, max: { read: 2, write: 1 } },
  USER_PRIVATE: { defaults: { read: 1, write: 1 }, max: { read: 1, write: 1 } },
  // The one exception to "defaults are the widest": SERVER_SCOPE holds server state, so an
  // admin's client write stays hidden (read 1, owner = system) until someone opens it with
  // read 2 on purpose — deny by default beats publishing server config by accident.
  SERVER_SCOPE: { defaults: { read: 1, write: 1 }, max: { read: 2, write: 1 } },
  MOD_DATA: { defaults: { read: 0, write: 0 }, max: { read: 2, write: 1 } },
};

/** Flags for objects the server runtime writes: system-owned and invisible to clients by default. */
export const RUNTIME_DEFAULT_FLAGS: { readonly read: ReadFlag; readonly write: WriteFlag } = {
  read: 0,
  write: 0,
};

const GRANT_ALLOWS: Record<ModGrant['permission'], ReadonlySet<Action>> = {
  read: new Set<Action>(['read', 'list']),
  write: new Set<Action>(['read', 'list', 'write']),
  full: new Set<Action>(['read', 'list', 'write', 'delete']),
};

/** The audit name of a caller: its user id, `guest`, `runtime` or `mod:<name>`. */
export function callerId(caller: Caller): string {
  switch (caller.kind) {
    case 'guest':
      return 'guest';
    case 'runtime':
      return 'runtime';
    case 'user':
      return caller.userId;
    case 'mod':
      return `mod:${caller.mod}`;
  }
}

function targetOf(address: Address, object: ObjectMeta | null | undefined): string {
  if (address.kind === 'blob') return object?.owner ?? SYSTEM_OWNER;
  if (address.scope === 'MOD_DATA') return `mod:${address.namespace}`;
  return namespaceOwner(address);
}

/**
 * THE permission function. Every HTTP route, every sync message and the runtime API ask it;
 * no rule is written anywhere else. Deny by default: every path that does not explicitly
 * allow ends in a denial.
 */
export function decide(request: AccessRequest): Decision {
  const { caller, address } = request;
  const object = request.object ?? null;
  const target = targetOf(address, object);
  const verdict = address.kind === 'blob' ? decideBlob(request, object) : decideDoc(request, address, object);
  const crossUser = isCrossUser(caller, request.action, address, object, target);
  const hideExistence = !verdict.allowed && verdict.hide === true;
  return {
    allowed: verdict.allowed,
    // "owner-read" vs "no such object" would tell the caller that a hidden object exists.
    reason: hideExistence ? HIDDEN_REASON : verdict.reason,
    detail: verdict.reason,
    crossUser,
    audit: crossUser || !verdict.allowed,
    hideExistence,
    target,
  };
}

interface Verdict {
  allowed: boolean;
  reason: string;
  hide?: boolean;
}

const allow = (reason: string): Verdict => ({ allowed: true, reason });
const deny = (reason: string, hide = false): Verdict => ({ allowed: false, reason, hide });

function isCrossUser(
  caller: Caller,
  action: Action,
  address: Address,
  object: ObjectMeta | null,
  target: string,
): boolean {
  if (caller.kind === 'runtime') return false;
  if (caller.kind === 'mod')
    return address.kind === 'doc' && address.scope === 'MOD_DATA' && address.namespace !== caller.mod;
  const me = caller.kind === 'user' ? caller.userId : null;
  if (target === me) return false;
  // Staff acting on anyone else's data is audited, the system's included (DESIGN §1 Audit).
  const isStaff = caller.kind === 'user' && caller.level >= Level.Moderator;
  if (address.kind === 'blob') {
    if (!object) return false; // creating a blob of one's own
    return target !== SYSTEM_OWNER || isStaff;
  }
  if (isUserScope(address.scope)) return true;
  if (!isStaff) return false;
  // Reads of the public system namespaces are nobody's private data, whoever reads them.
  const publicSystem = address.scope === 'PUBLIC_READ' || address.scope === 'PUBLIC_RW';
  return !(publicSystem && (action === 'read' || action === 'list'));
}

function decideDoc(request: AccessRequest, address: DocAddress, object: ObjectMeta | null): Verdict {
  const { caller, action } = request;
  if (caller.kind === 'runtime') return allow('the server runtime is authoritative');
  if (action === 'share') return deny('only blobs can be shared');
  if (caller.kind === 'mod') return decideMod(request, address, caller);
  if (address.scope === 'MOD_DATA') return deny('MOD_DATA is reachable only by mods');

  const userId = caller.kind === 'user' ? caller.userId : null;
  const level: number = caller.kind === 'user' ? caller.level : Level.Guest;
  const isOwner = userId !== null && userId === namespaceOwner(address);
  const isStaff = level >= Level.Moderator;
  const isAdmin = level >= Level.Admin;

  // Scope gate: who may do this action in this scope at all.
  const who = { isOwner, isStaff, isAdmin, isUser: userId !== null };
  const gate = scopeGate(address.scope, action, who);
  if (!gate.allowed) return gate;
  if (action === 'list') return gate; // listing filters per object; the namespace gate is all it needs.

  // Object gate: the flags of an existing object narrow what the scope allows.
  if (!object) {
    if (action === 'read' || action === 'delete') return deny('no such object', true);
    return gate; // creating
  }
  if (action === 'read') return readFlagGate(object, userId);
  // write and delete of an existing object
  if (object.write === 0) {
    // A refused delete of an object the caller cannot read answers like a delete of nothing
    // (404), so it does not reveal that a hidden object exists.
    const canRead = scopeGate(address.scope, 'read', who).allowed && readFlagGate(object, userId).allowed;
    return deny('the object is not writable by clients (write 0)', action === 'delete' && !canRead);
  }
  return gate;
}

function scopeGate(
  scope: Scope,
  action: Exclude<Action, 'share'>,
  who: { isOwner: boolean; isStaff: boolean; isAdmin: boolean; isUser: boolean },
): Verdict {
  const reading = action === 'read' || action === 'list';
  switch (scope) {
    case 'PUBLIC_READ':
      if (reading) return allow('PUBLIC_READ is readable by everyone');
      return who.isAdmin ? allow('admins write PUBLIC_READ') : deny('only admins write PUBLIC_READ');
    case 'PUBLIC_RW':
      return allow('PUBLIC_RW is open to everyone');
    case 'USER_PUBLIC':
      if (reading) return allow('USER_PUBLIC is readable by everyone');
      if (who.isOwner) return allow('owners write their USER_PUBLIC');
      if (who.isStaff) return allow('moderators and admins write other users’ USER_PUBLIC');
      return deny('only the owner, moderators and admins write USER_PUBLIC');
    case 'USER_PRIVATE':
      if (who.isOwner) return allow('owners have their USER_PRIVATE');
      if (action === 'delete' && who.isAdmin) return allow('admins may delete USER_PRIVATE');
      return deny('USER_PRIVATE belongs to its owner only', reading);
    case 'SERVER_SCOPE':
      // Reads pass the scope gate; the object gate then demands public read (2).
      if (reading) return allow('SERVER_SCOPE objects are readable once public-read');
      return who.isAdmin
        ? allow('admins write SERVER_SCOPE')
        : deny('only the server and admins write SERVER_SCOPE');
    case 'MOD_DATA':
      return deny('MOD_DATA is reachable only by mods');
  }
}

function readFlagGate(object: ObjectMeta, userId: string | null): Verdict {
  if (object.read === 2) return allow('public read');
  if (object.read === 0) return deny('the object is not readable by clients (read 0)', true);
  // Owner read means the owner only: staff may write or delete another user's draft, not read it.
  if (userId !== null && object.owner === userId) return allow('owner read');
  return deny('the object is owner-read', true);
}

function decideMod(
  request: AccessRequest,
  address: DocAddress,
  caller: Extract<Caller, { kind: 'mod' }>,
): Verdict {
  if (address.scope !== 'MOD_DATA') {
    return deny('mods reach other scopes through the runtime API on behalf of a user');
  }
  if (address.namespace === caller.mod) return allow('a mod owns its MOD_DATA');
  const now = request.now ?? Date.now();
  let sawExpired = false;
  let sawNarrower = false;
  for (const grant of caller.grants) {
    if (grant.source !== caller.mod || grant.target !== address.namespace) continue;
    if (grant.keys && request.action !== 'list' && !grant.keys.some((k) => keyMatches(k, address.key)))
      continue;
    if (grant.expiresAt !== undefined && grant.expiresAt <= now) {
      sawExpired = true;
      continue;
    }
    if (GRANT_ALLOWS[grant.permission].has(request.action)) return allow(`granted ${grant.permission}`);
    sawNarrower = true;
  }
  if (sawNarrower) return deny(`the grant does not allow ${request.action}`);
  if (sawExpired) return deny('the grant has expired');
  return deny(`no grant from ${address.namespace} to ${caller.mod}`);
}

function keyMatches(pattern: string, key: string): boolean {
  return pattern.endsWith('*') ? key.startsWith(pattern.slice(0, -1)) : pattern === key;
}

function decideBlob(request: AccessRequest, object: ObjectMeta | null): Verdict {
  const { caller, action } = request;
  if (caller.kind === 'runtime') return allow('the server runtime is authoritative');
  if (caller.kind !== 'user') return deny('blobs belong to users', true);
  if (!object) {
    if (action === 'write') return allow('any user may create a blob');
    return deny('no such blob', true);
  }
  const isOwner = object.owner === caller.userId;
  if (isOwner) return allow('the owner has the blob');
  const share = object.shares?.get(caller.userId);
  switch (action) {
    case 'read':
    case 'list':
      return share ? allow(`shared ${share}`) : deny('not shared with you', true);
    case 'write':
      if (share === 'read_write') return allow('shared read_write');
      return share ? deny('shared read_only') : deny('not shared with you', true);
    case 'delete':
      if (caller.level >= Level.Admin) return allow('admins may delete blobs');
      return share ? deny('only the owner deletes a blob') : deny('not shared with you', true);
    case 'share':
      // Only the owner manages the audience; a sharee re-sharing would widen it behind the
      // owner's back and, for encrypted blobs, only the owner rotates keys on revocation.
      return share ? deny('only the owner shares a blob') : deny('not shared with you', true);
  }
}

/**
 * The flags a write stores. A client write defaults to its scope's widest flags and may
 * narrow them (owner, or an admin); the runtime defaults to read 0 / write 0. Flags past
 * the scope's ceiling are a BadRequest; anyone but the (future) owner, an admin, the runtime or
 * a mod choosing other flags than the current ones (or, on create, the defaults) is Forbidden.
 */
export function flagsForWrite(
  caller: Caller,
  address: Address,
  existing: ObjectMeta | null | undefined,
  requested: { read?: number | undefined; write?: number | undefined },
): { read: ReadFlag; write: WriteFlag } {
  const scope: Scope = address.kind === 'blob' ? 'USER_PRIVATE' : address.scope;
  const { defaults, max } =
    address.kind === 'blob'
      ? { defaults: { read: 1, write: 1 } as const, max: { read: 1, write: 1 } as const }
      : SCOPE_FLAGS[scope];
  const read = requested.read;
  const write = requested.write;
  if (read !== undefined && !(read === 0 || read === 1 || read === 2))
    throw new SyncError('BadRequest', 'read must be 0, 1 or 2');
  if (write !== undefined && !(write === 0 || write === 1))
    throw new SyncError('BadRequest', 'write must be 0 or 1');
  if ((read ?? 0) > max.read || (write ?? 0) > max.write) {
    throw new SyncError(
      'BadRequest',
      `${address.kind === 'blob' ? 'blob' : scope} allows at most read ${max.read} / write ${max.write}`,
    );
  }
  const base =
    existing ?? (caller.kind === 'runtime' || caller.kind === 'mod' ? RUNTIME_DEFAULT_FLAGS : defaults);
  const next = { read: (read ?? base.read) as ReadFlag, write: (write ?? base.write) as WriteFlag };
  // Creating counts too: a guest must not create a PUBLIC_RW object at write 0 that nobody can edit.
  const owner = existing ? existing.owner : ownerForCreate(caller, address);
  if (next.read !== base.read || next.write !== base.write) {
    const mayChange =
      caller.kind === 'runtime' ||
      caller.kind === 'mod' ||
      (caller.kind === 'user' && (caller.userId === owner || caller.level >= Level.Admin));
    if (!mayChange)
      throw new SyncError('Forbidden', 'only the owner or an admin changes an object’s permissions');
  }
  return next;
}

/**
 * The owner a newly created object gets: the system for anything the server runtime writes,
 * else the namespace's user, the creating user of a blob, or the system.
 */
export function ownerForCreate(caller: Caller, address: Address): string {
  if (caller.kind === 'runtime') return SYSTEM_OWNER;
  if (address.kind === 'blob') return caller.kind === 'user' ? caller.userId : SYSTEM_OWNER;
  return namespaceOwner(address);
}
