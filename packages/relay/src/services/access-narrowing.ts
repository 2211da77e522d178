import type { ObjectMeta } from '@scopesync/core';
import type { AccessChanged } from '../events/relay-events.ts';

/**
 * Why a write changed who may see an object, or null when it did not: created, owner changed,
 * or flags changed. Decides whether an `access-changed` event must be handled before the
 * write's content is sent anywhere.
 */
export function accessChangeOf(before: ObjectMeta | null, after: ObjectMeta): AccessChanged['cause'] | null {
  if (before === null) return 'created';
  if (before.owner !== after.owner) return 'owner';
  if (before.read !== after.read || before.write !== after.write) return 'flags';
  return null;
}
