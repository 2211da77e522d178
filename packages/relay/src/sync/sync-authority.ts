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
   * False for a probe that is not an access attempt, so it must not be audited: the sync
   * layer asks whether a subscription could write (to announce read or read-write access),
   * and re-checks live subscriptions in `refreshAccess`. Every real attempt (a subscription
   * starting, the first write of a subscription) is checked with auditing. Default true.
   */
  readonly audit?: boolean | undefined;
}

/**
 * Everything the sync layer needs from the relay's auth, access control and object
 * metadata. The relay implements it once (over the same `decide()` and audit log the HTTP
 * routes use), so WebSocket and HTTP cannot disagree about who may do what.
 */
export interface SyncAuthority {
  /**
   * The caller behind an upgrade request: its API key from `x-api-key`, `Authorization:
   * Bearer` or `?key=`; Guest when there is none. Throws SyncError('Unauthorized') for a
   * key that is unknown or revoked.
   */
  authenticate(request: IncomingMessage): Promise<Caller>;
  /**
   * An opaque id of the credential an upgrade request carries (the relay: its API key's hash),
   * or null for none. The sync layer remembers it per socket so that revoking the credential
   * can close exactly its sockets (`SyncServer.closeCredential`). Optional.
   */
  credentialOf?(request: IncomingMessage): string | null;
  /**
   * Asks `decide()` about one action on the channel `ws`, appending the audit entry it calls
   * for — unless `options.audit` is false (see {@link CheckOptions}).
   */
  check(caller: Caller, action: Action, address: Address, options?: CheckOptions): Promise<CheckedAccess>;
  /**
   * Records that `caller` is about to write `address`: creates the object's metadata on the
   * first write (owner, flags from `requested` over the scope defaults) or applies a flag
   * change to an existing object. Throws SyncError (BadRequest / Forbidden) when the flags
   * are not allowed. Resolves with the object's metadata after the change.
   */
  prepareWrite(caller: Caller, address: Address, requested?: RequestedFlags): Promise<ObjectMeta>;
}
