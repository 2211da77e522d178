// The events a DocHandle emits, for its listeners and its channels.
import type { DocAccess, SyncError } from '@scopesync/core';
import type * as Y from 'yjs';

/** The events of a {@link DocHandle}. */
export interface DocHandleEvents {
  /** An update from the relay (another client's edit) was applied to the doc. */
  'remote-update': { readonly update: Uint8Array };
  /**
   * The relay reported this client's access to the doc (on subscribe and whenever it changes).
   * Access 'waiting' means the doc does not exist yet (or is hidden): the handle stays open and
   * waits ({@link DocHandle.waiting}) — unless this client could read it before, when it was
   * deleted or unshared meanwhile and the handle closes as on a revocation. Access 'none' means
   * the subscription ended.
   */
  permission: { readonly access: DocAccess; readonly reason: string };
  /** The doc caught up with the relay (after every (re)connect). */
  synced: undefined;
  /** The number of unacknowledged local updates changed. */
  pending: number;
  /** Something went wrong: a refused write, a refused subscription, a failed local write. */
  error: SyncError;
  /**
   * The doc was rebuilt from confirmed state (after a refused or forbidden write, or a wipe) and
   * {@link DocHandle.doc} is now a new Y.Doc: re-bind editors to `doc`. If presence was in use,
   * {@link DocHandle.awareness} is by then a new Awareness of the new doc (its clientID): re-bind
   * cursor plugins to it too.
   */
  reset: { readonly doc: Y.Doc };
  /**
   * The relay refused a doc this handle only ever held its own unsent edits of — for a blob: the
   * id belongs to someone else (SyncError 'Conflict'). The edits stay in the local store and in
   * {@link DocHandle.doc}; the handle stops syncing ('closed' follows) instead of retrying.
   */
  denied: { readonly error: SyncError };
  /** The handle stopped syncing for good: released, revoked (access none) or the client closed. */
  closed: { readonly reason: string };
}
