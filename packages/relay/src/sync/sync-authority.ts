import type { IncomingMessage } from 'node:http';
import type { Action, Address, Caller, Decision, ObjectMeta, ReadFlag, WriteFlag } from '@scopesync/core';

/** What an access check returns: the engine's decision and the object it was made about. */
export interface CheckedAccess {
  readonly decision: Decision;
  /** The object's metadata when it exists, null when it does not (yet). */
  readonly object: ObjectMeta | null;
  /**
   * Whether the existing object is end-to-end encrypted (synced only on the encrypted channel);
   * undefined when there is no object or the authority does not track it.
   */
  readonly encrypted?: boolean | undefined;
}

/** Flags a client asks for when it creates or narrows an object; undefined fields keep the current or default value. */
export interface RequestedFlags {
  readonly read?: ReadFlag | undefined;
  readonly write?: WriteFlag | undefined;
  /**
   * A blob created by this write is end-to-end encrypted (it was subscribed on the encrypted
   * channel). Fixed at creation: an existing object keeps its mode.
   */
  readonly encrypted?: boolean | undefined;
}

/** Options of {@link SyncAuthority.check}. */
export interface CheckOptions {
  /**
   * False for a probe that is not an access attempt, so it must not be audited (whether a
   * subscription could write; a re-decision after an access change). Every real attempt (a
   * subscription starting, a first write) is checked with auditing. Default true.
   */
  readonly audit?: boolean | undefined;
  /**
   * What an earlier check of the same decision returned: the object it read is decided on
   * again instead of read from the store once more, so the checks of one decision (read, then
   * write) see one state of it and cost one read. An authority may ignore it and read again.
   */
  readonly loaded?: CheckedAccess | undefined;
}

/**
 * Everything the sync layer needs from the relay's auth and access control. The relay
 * implements it once, over the same `decide()`, audit log and write use case the HTTP routes
 * and the runtime use, so that no channel can disagree about who may do what.
 */
export interface SyncAuthority {
  /**
   * The caller behind an upgrade request: its API key or token from `x-api-key`,
   * `Authorization: Bearer`, the `bearer.<credential>` subprotocol or `?key=`; Guest when there
   * is none. Throws SyncError('Unauthorized') for one that is unknown, revoked or expired.
   */
  authenticate(request: IncomingMessage): Promise<Caller>;
  /**
   * Optional: `authenticate` and `credentialOf` together, answered in the caller's turn when the
   * authority can (an API key against a synchronous store); undefined when it cannot, and the
   * async methods must be asked. Throws SyncError('Unauthorized') where `authenticate` rejects.
   * The credential is checked against the store each time: never a cache of verified keys.
   */
  authenticateNow?(
    request: IncomingMessage,
  ): { readonly caller: Caller; readonly credential: string | null } | undefined;
  /**
   * An opaque id of the credential an upgrade request carries (the relay: its API key's hash),
   * or null for none: a `credential-revoked` event names it to close exactly its sockets.
   */
  credentialOf?(request: IncomingMessage): string | null;
  /**
   * Who the credential (see `credentialOf`) stands for now, at the user's current level; null
   * when it was revoked. How sockets catch up with account changes they may have missed.
   */
  reauthenticate?(credential: string): Promise<Caller | null>;
  /**
   * When the credential stops being valid on its own (an app token's `exp`, epoch ms), or null:
   * its sockets are closed with 4401 then.
   */
  expiryOf?(credential: string): number | null;
  /**
   * Asks `decide()` about one action on the channel `ws`, appending the audit entry it calls
   * for — unless `options.audit` is false (see {@link CheckOptions}).
   */
  check(caller: Caller, action: Action, address: Address, options?: CheckOptions): Promise<CheckedAccess>;
  /**
   * Optional: a probe (`check` with `audit: false`) answered in the caller's turn when the
   * authority can (on `loaded`'s object, or a synchronous store's read); undefined when it cannot,
   * and `check` must be asked. The same `decide()` as `check`.
   */
  probeNow?(
    caller: Caller,
    action: Action,
    address: Address,
    loaded?: CheckedAccess,
  ): CheckedAccess | undefined;
  /**
   * A subscription's first write: decides `write` (audited, channel `ws`) and, when allowed,
   * creates the object (owner, flags from `requested` over the scope defaults) or applies the
   * requested flags — and when that changed who may read it, has every subscription of the
   * document decided again before resolving. Throws SyncError (BadRequest / Forbidden) for flags
   * the caller may not set.
   */
  authorizeWrite(caller: Caller, address: Address, requested: RequestedFlags): Promise<Decision>;
}
