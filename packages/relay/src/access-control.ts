import type { IncomingMessage } from 'node:http';
import {
  type Action,
  type Address,
  type AuditChannel,
  type Caller,
  callerId,
  type Decision,
  decide,
  flagsForWrite,
  type ImmediateRelayReads,
  isEncryptedScope,
  isLevel,
  type KeyHolder,
  type ObjectMeta,
  type ObjectRecord,
  ownerForCreate,
  type RelayStore,
  type ShareLevel,
  type ShareRecord,
  SyncError,
  type UserId,
} from '@scopesync/core';
import type { AuditLog } from './audit-log.ts';
import { isJwtShaped, MAX_TOKEN_LENGTH } from './auth/jwt-verifier.ts';
import { isTokenCredential, type TokenUsers, tokenExpiryOf } from './auth/token-users.ts';
import { apiKeyOf, hashApiKey, isApiKeyShaped } from './credentials.ts';
import { DenialAuditThrottle, type DenialAuditThrottleOptions } from './denial-audit-throttle.ts';
import type { Counter, Metrics } from './metrics.ts';
import type { RelayLog } from './relay-log.ts';
import type { CheckedAccess, CheckOptions, RequestedFlags } from './sync/sync-authority.ts';

/** Options of {@link AccessControl}. */
export interface AccessControlOptions {
  readonly store: RelayStore;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  /** Epoch milliseconds; injectable for tests. */
  readonly now?: () => number;
  /** Where each denial is reported (`notice`, `denied: true`). Default: nowhere. */
  readonly log?: RelayLog | undefined;
  /** How repeated denials are kept from filling the audit log (see {@link DenialAuditThrottle}). */
  readonly denialAudit?: Omit<DenialAuditThrottleOptions, 'now'>;
  /** The app's tokens (JWTs), when the relay accepts them (docs/auth.md). Default: API keys only. */
  readonly tokens?: TokenUsers | undefined;
}

/** Who a request's credential stands for, and the id its sockets remember it by. */
export interface Authenticated {
  readonly caller: Caller;
  /** An API key's hash, a token's `jwt:…` id (see `TokenUsers`), or null for a guest. */
  readonly credential: string | null;
}

/** How often a write refreshes an object's `updatedAt` at most, in ms: a busy document is not one metadata write per keystroke. */
const TOUCH_INTERVAL_MS = 1000;

/** Options of {@link AccessControl.check}: the SyncAuthority's, plus the channel to audit. */
export interface AccessCheckOptions extends CheckOptions {
  /** Where the attempt came from. Default `ws`. */
  readonly channel?: AuditChannel | undefined;
}

/** A caller that is a signed-in user: its id and level. */
export type UserCaller = Extract<Caller, { kind: 'user' }>;

/**
 * The relay's one access path. It authenticates API keys, loads an object's metadata (with
 * its shares), asks core's `decide()` and appends the audit entry the decision calls for,
 * and records writes (owner and flags via `ownerForCreate`/`flagsForWrite`). The services
 * (and through them HTTP, the sync endpoints and the runtime) use the same methods, so the
 * channels cannot disagree.
 */
export class AccessControl {
  readonly #store: RelayStore;
  readonly #audit: AuditLog;
  readonly #now: () => number;
  readonly #denials: Counter;
  readonly #audited: Counter;
  readonly #log: RelayLog;
  readonly #denialThrottle: DenialAuditThrottle;
  readonly #denialsFolded: Counter;
  readonly #tokens: TokenUsers | null;
  /** What each request authenticated as, so an upgrade's credential is the one its caller came from. */
  readonly #authenticated = new WeakMap<IncomingMessage, Promise<Authenticated>>();
  readonly #settled = new WeakMap<IncomingMessage, Authenticated>();

  constructor(options: AccessControlOptions) {
    this.#tokens = options.tokens ?? null;
    this.#log = options.log ?? (() => undefined);
    this.#store = options.store;
    this.#audit = options.audit;
    this.#now = options.now ?? Date.now;
    this.#denialThrottle = new DenialAuditThrottle({ ...options.denialAudit, now: () => this.#now() });
    this.#denialsFolded = options.metrics.counter(
      'scopesync_audit_denials_folded_total',
      'Repeated denials counted into a later audit entry instead of appended.',
    );
    this.#denials = options.metrics.counter(
      'scopesync_access_denials_total',
      'Access checks decide() denied (all channels).',
    );
    this.#audited = options.metrics.counter('scopesync_audit_entries_total', 'Audit entries appended.');
  }

  /**
   * The caller behind a request's credential (see `apiKeyOf`): an API key, or an app token when
   * the relay accepts them; Guest without one. Unauthorized for an unknown, revoked, invalid or
   * expired one. The one way HTTP routes and WebSocket upgrades authenticate.
   */
  async authenticate(request: IncomingMessage): Promise<Caller> {
    return (await this.authenticateRequest(request)).caller;
  }

  /** Like {@link authenticate}, with the credential's id; memoized per request. */
  authenticateRequest(request: IncomingMessage): Promise<Authenticated> {
    let result = this.#authenticated.get(request);
    if (!result) {
      result = this.#authenticateCredential(apiKeyOf(request)).then((authenticated) => {
        this.#settled.set(request, authenticated);
        return authenticated;
      });
      this.#authenticated.set(request, result);
    }
    return result;
  }

  /**
   * {@link authenticateRequest}, answered in the caller's turn when it can be: no credential, or
   * an API key while the store has its immediate reads (SQLite with no transaction waiting).
   * Undefined otherwise (a token, a malformed credential, a store that must be awaited): ask
   * `authenticateRequest`. Throws SyncError('Unauthorized') where that rejects. The key is read
   * from the store every time (a revoked key is refused at once); nothing is memoized.
   */
  authenticateNow(request: IncomingMessage): Authenticated | undefined {
    const key = apiKeyOf(request);
    if (key === null) return GUEST;
    if (!isApiKeyShaped(key)) return undefined;
    const reads = this.#store.immediateReads?.();
    if (!reads) return undefined;
    const keyHash = hashApiKey(key);
    return keyAuthenticated(userOfFound(reads.getKeyHolder(keyHash)), keyHash);
  }

  /** The caller a credential (API key or token) stands for; Guest for null. Unauthorized for an invalid one. */
  async authenticateKey(key: string | null): Promise<Caller> {
    return (await this.#authenticateCredential(key)).caller;
  }

  async #authenticateCredential(key: string | null): Promise<Authenticated> {
    if (key === null) return GUEST;
    if (isApiKeyShaped(key)) {
      const keyHash = hashApiKey(key);
      return keyAuthenticated(await this.userOfKeyHash(keyHash), keyHash);
    }
    if (this.#tokens !== null && key.length <= MAX_TOKEN_LENGTH) {
      const { caller, credential } = await this.#tokens.authenticate(key);
      return { caller, credential };
    }
    throw new SyncError(
      'Unauthorized',
      isJwtShaped(key) ? 'this relay does not accept tokens' : 'invalid or revoked API key',
    );
  }

  /**
   * Who a socket's credential id stands for now (at the user's current level): null once the
   * key was revoked or the token expired.
   */
  reauthenticate(credential: string): Promise<UserCaller | null> {
    if (isTokenCredential(credential))
      return this.#tokens?.reauthenticate(credential) ?? Promise.resolve(null);
    return this.userOfKeyHash(credential);
  }

  /** When a credential id stops being valid on its own (a token's `exp`, epoch ms), or null (API keys). */
  expiryOf(credential: string): number | null {
    return tokenExpiryOf(credential);
  }

  /** The user an API key belongs to while it is valid, or null. */
  async userOfKey(key: string): Promise<UserCaller | null> {
    // A key of the wrong shape cannot be one we issued: skip the hash and the lookup.
    if (!isApiKeyShaped(key)) return null;
    return this.userOfKeyHash(hashApiKey(key));
  }

  /** The user the API key with this hash belongs to while it is valid (at their current level), or null. */
  async userOfKeyHash(keyHash: string): Promise<UserCaller | null> {
    // One store call, not getKey then getUser: every socket opened with a key pays this once.
    return userOfFound(await this.#store.getKeyHolder(keyHash));
  }

  /** The object's metadata as `decide()` sees it (blob shares included), or null when it does not exist. */
  async loadObject(address: Address): Promise<ObjectMeta | null> {
    const record = await this.#store.getObject(address.name);
    return record ? this.#meta(address, record) : null;
  }

  /**
   * A probe ({@link check} with `audit: false`: nothing logged, counted or audited) answered in
   * the caller's turn: on the object `loaded` carries (see CheckOptions.loaded), or read through
   * the store's immediate reads. Undefined when the store must be awaited: ask `check`.
   */
  probeNow(
    caller: Caller,
    action: Action,
    address: Address,
    loaded?: CheckedAccess,
  ): CheckedAccess | undefined {
    let state: Omit<CheckedAccess, 'decision'> | undefined = loaded;
    if (state === undefined) {
      const reads = this.#store.immediateReads?.();
      if (!reads) return undefined;
      state = loadNow(reads, address);
    }
    return withDecision(state, decide({ caller, action, address, object: state.object, now: this.#now() }));
  }

  /**
   * The id of the credential a request authenticated with (see {@link authenticateRequest}): an
   * API key's hash, a token's `jwt:…` id, or null — how sockets remember their key or token. For
   * a request not authenticated yet, the hash of whatever credential it carries.
   */
  credentialOf(request: IncomingMessage): string | null {
    const settled = this.#settled.get(request);
    if (settled) return settled.credential;
    const key = apiKeyOf(request);
    return key === null ? null : hashApiKey(key);
  }

  /**
   * Decides one action, appending the audit entry the decision calls for (unless
   * `options.audit` is false: a probe, not an attempt). The channel defaults to `ws`, the
   * SyncAuthority's.
   */
  async check(
    caller: Caller,
    action: Action,
    address: Address,
    options: AccessCheckOptions = {},
  ): Promise<CheckedAccess> {
    // The object an earlier check of the same decision read (see CheckOptions.loaded), or the store's.
    const state = options.loaded ?? (await this.#load(address));
    return withDecision(state, await this.decideOn(caller, action, address, state.object, options));
  }

  /** The object's metadata and mode, as a check sees them; `object` null when it does not exist. */
  async #load(address: Address): Promise<Omit<CheckedAccess, 'decision'>> {
    const record = await this.#store.getObject(address.name);
    return record
      ? { object: await this.#meta(address, record), encrypted: record.encrypted }
      : { object: null };
  }

  /** Like {@link check}, for an object the caller already loaded. */
  async decideOn(
    caller: Caller,
    action: Action,
    address: Address,
    object: ObjectMeta | null,
    options: AccessCheckOptions = {},
  ): Promise<Decision> {
    const decision = decide({ caller, action, address, object, now: this.#now() });
    if (options.audit === false) return decision;
    if (!decision.allowed) {
      this.#denials.inc();
      this.#log('notice', 'access denied', {
        denied: true,
        caller: callerId(caller),
        action,
        object: address.name,
        channel: options.channel ?? 'ws',
        reason: decision.reason,
      });
    }
    if (!decision.audit) return decision;
    let audited = decision;
    if (!decision.allowed) {
      // Denials cost the caller nothing: repeats are counted, not appended (see DenialAuditThrottle).
      const verdict = this.#denialThrottle.admit(
        callerId(caller),
        `${action} ${options.channel ?? 'ws'}`,
        address.name,
      );
      if (!verdict.append) {
        this.#denialsFolded.inc();
        return decision;
      }
      if (verdict.folded > 0)
        audited = { ...decision, reason: `${decision.reason} (+${verdict.folded} repeats not logged)` };
    }
    await this.audit(caller, action, address, audited, options.channel ?? 'ws');
    return decision;
  }

  /** Appends the audit entry for one decision. */
  async audit(
    caller: Caller,
    action: Action,
    address: Address,
    decision: Decision,
    channel: AuditChannel,
  ): Promise<void> {
    await this.#audit.record({
      accessor: callerId(caller),
      target: decision.target,
      scope: address.kind === 'blob' ? 'blob' : address.scope,
      key: address.kind === 'blob' ? address.blobId : address.key,
      action,
      result: decision.allowed ? 'ok' : 'denied',
      channel,
      reason: decision.reason,
    });
    this.#audited.inc();
  }

  /**
   * Decides `write` (audited, on `channel`) for a write that leaves the object as it is: it
   * exists and `requested` keeps its flags. When allowed, refreshes its `updatedAt` as
   * {@link prepareWrite} would, and nothing else, so it needs no lock: there is nothing to
   * create and no flag to change that another writer could race. Null when the write would
   * create the object or change its flags (or ask for flags it may not set): then only
   * {@link prepareWrite}, under the object's lock, may record it.
   */
  async checkUnchangingWrite(
    caller: Caller,
    address: Address,
    requested: RequestedFlags,
    channel: AuditChannel,
  ): Promise<Decision | null> {
    const record = await this.#store.getObject(address.name);
    if (!record) return null;
    const object = await this.#meta(address, record);
    let flags: { read: number; write: number };
    try {
      flags = flagsForWrite(caller, address, object, requested);
    } catch {
      return null; // the locked path decides first, then refuses the flags with their reason
    }
    if (changesFlags(record, flags)) return null;
    const decision = await this.decideOn(caller, 'write', address, object, { channel });
    const now = this.#now();
    if (decision.allowed && isStale(record, now)) {
      // `updatedAt` alone: the row's flags may have changed since it was read, and are not ours to write.
      await this.#store.updateObject(address.name, { updatedAt: now });
    }
    return decision;
  }

  /**
   * Records that `caller` is about to write `address`: creates the metadata on the first
   * write (owner from `ownerForCreate`, flags from `flagsForWrite`) or applies a flag change.
   * Throws BadRequest/Forbidden for flags the caller may not set. The permission to write at
   * all is `check`'s business, asked before. Resolves with the metadata before (null: this
   * created the object) and after, from one read of the object.
   */
  async prepareWrite(
    caller: Caller,
    address: Address,
    requested: RequestedFlags = {},
  ): Promise<{ readonly before: ObjectMeta | null; readonly after: ObjectMeta }> {
    const now = this.#now();
    const record = await this.#store.getObject(address.name);
    if (!record) {
      const created = await this.#store.createObject(this.newObject(caller, address, requested, now));
      return { before: null, after: await this.#meta(address, created) };
    }
    const before = await this.#meta(address, record);
    const flags = flagsForWrite(caller, address, before, requested);
    if (changesFlags(record, flags) || isStale(record, now)) {
      const updated = await this.#store.updateObject(address.name, { ...flags, updatedAt: now });
      if (updated) return { before, after: await this.#meta(address, updated) };
    }
    return { before, after: before };
  }

  /**
   * The metadata a first write by `caller` creates: owner from `ownerForCreate`, flags from
   * `flagsForWrite` over the scope's (or the runtime's) defaults; encrypted for USER_PRIVATE,
   * and for a blob when `requested.encrypted`. Throws BadRequest/Forbidden for flags the caller
   * may not set. Stores nothing.
   */
  newObject(
    caller: Caller,
    address: Address,
    requested: RequestedFlags = {},
    now: number = this.#now(),
  ): ObjectRecord {
    const flags = flagsForWrite(caller, address, null, requested);
    return {
      name: address.name,
      owner: ownerForCreate(caller, address),
      read: flags.read,
      write: flags.write,
      encrypted: address.kind === 'doc' ? isEncryptedScope(address.scope) : requested.encrypted === true,
      minEpoch: 0,
      createdAt: now,
      updatedAt: now,
      size: 0,
      version: 0,
    };
  }

  async #meta(address: Address, record: ObjectRecord): Promise<ObjectMeta> {
    return metaOf(record, address.kind === 'blob' ? await this.#store.listShares(address.blobId) : null);
  }
}

/** Whether storing `flags` changes the object's. */
function changesFlags(record: ObjectRecord, flags: { read: number; write: number }): boolean {
  return flags.read !== record.read || flags.write !== record.write;
}

/** Whether a write at `now` refreshes the object's `updatedAt` (see {@link TOUCH_INTERVAL_MS}). */
function isStale(record: ObjectRecord, now: number): boolean {
  return now - record.updatedAt >= TOUCH_INTERVAL_MS;
}

const GUEST: Authenticated = Object.freeze({ caller: Object.freeze({ kind: 'guest' }), credential: null });

/** What an API key with this hash authenticates as; Unauthorized when it names no valid user. */
function keyAuthenticated(user: UserCaller | null, keyHash: string): Authenticated {
  if (!user) throw new SyncError('Unauthorized', 'invalid or revoked API key');
  return { caller: user, credential: keyHash };
}

/** The user a key read from the store stands for, or null when it is unknown or revoked, or its user is gone. */
function userOfFound(found: KeyHolder | null): UserCaller | null {
  if (!found || found.revokedAt !== null) return null;
  const user = found.user;
  if (!user || !isLevel(user.level)) return null;
  return { kind: 'user', userId: user.userId as UserId, level: user.level };
}

/** A check's answer: the decision on the object as loaded (its mode only when it exists). */
function withDecision(state: Omit<CheckedAccess, 'decision'>, decision: Decision): CheckedAccess {
  const { object, encrypted } = state;
  return object ? { decision, object, encrypted } : { decision, object };
}

/** The object's metadata and mode read in the caller's turn, as `check` would load them. */
function loadNow(reads: ImmediateRelayReads, address: Address): Omit<CheckedAccess, 'decision'> {
  const record = reads.getObject(address.name);
  if (!record) return { object: null };
  const shares = address.kind === 'blob' ? reads.listShares(address.blobId) : null;
  return { object: metaOf(record, shares), encrypted: record.encrypted };
}

/** An object's metadata as `decide()` sees it: a blob's with its shares (`shares` non-null). */
function metaOf(record: ObjectRecord, shares: readonly ShareRecord[] | null): ObjectMeta {
  if (shares === null) return { owner: record.owner, read: record.read, write: record.write };
  const levels = new Map<string, ShareLevel>();
  for (const share of shares) levels.set(share.userId, share.level);
  return { owner: record.owner, read: record.read, write: record.write, shares: levels };
}
