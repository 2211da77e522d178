import type { DocName, RelayStore } from '@scopesync/core';
import type { DocHub } from './documents/doc-hub.ts';
import type { EventBus } from './events/event-bus.ts';

/** What removing an object touches: the relay's metadata, the document content and live subscriptions. */
export interface ObjectRemoval {
  readonly store: RelayStore;
  readonly hub: DocHub;
  /** Where the removal is announced (`doc-removed`), so live subscriptions of the document end. */
  readonly bus: EventBus;
  /** Re-checks the document's live subscriptions; never rejects. */
  readonly refreshAccess: (name: DocName) => Promise<void>;
}

/**
 * Removes an object everywhere, the metadata first: from then on every access check sees no
 * object. Then its document content (a blob may also be a collaborative document); then the
 * removal is announced, which ends the document's live subscriptions, and the subscriptions
 * that lost access otherwise are decided again. Resolves with whether the object existed. The caller
 * holds the object's mutex.
 */
export async function removeObject(removal: ObjectRemoval, name: DocName): Promise<boolean> {
  const existed = await removal.store.deleteObject(name);
  await removal.hub.remove(name);
  await removal.bus.publish({ type: 'doc-removed', name });
  await removal.refreshAccess(name);
  return existed;
}
