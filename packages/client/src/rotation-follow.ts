import { type ShareLevel, SyncError } from '@scopesync/core';
import { asSyncError } from './as-sync-error.ts';
import { sameBytes } from './base64.ts';
import type { DocKeys } from './doc-keys.ts';
import type { PublicKeys } from './key-api.ts';
import type { Trust } from './trust.ts';

// The owner of an encrypted blob follows a member's signed identity rotation by itself
// (docs/encryption.md, "A lost device"): the blob's keys are sealed to the member's new keys and
// those signed into the next member list version, as `blobs.share` would. Only a rotation this
// client verified (the listed key retired by a chain of signed, countersigned statements ending
// at the pinned keys) is followed: an unexplained change waits for the app (`trust.accept`, then
// `blobs.share`).

/** One follow at a time per blob: two triggers (an event and an envelope) must not both append. */
const following = new WeakMap<DocKeys, Promise<unknown>>();

/**
 * Re-shares the blob of `keys` (owned by this user) with `userId` at its listed level when the
 * member list pins keys for them that a verified rotation retired: every current key is sealed
 * to the keys pinned now, and the next member list version names them. True when it did; false
 * when there is nothing to follow (not the owner, not a member, keys current, or a change that
 * no signed rotation explains). A follow that fails is reported (`follow-failed` on `trust`)
 * and rethrown; the next trigger or sweep tries again.
 */
export function followRotation(keys: DocKeys, trust: Trust, userId: string): Promise<boolean> {
  const previous = following.get(keys) ?? Promise.resolve();
  const next = previous
    .catch(() => undefined)
    .then(() => follow(keys, trust, userId))
    .catch((cause: unknown) => {
      const error = asSyncError(cause, 'Internal', `following ${userId}'s rotation failed`);
      if (keys.address.kind === 'blob')
        trust.reportFollowFailed({ blobId: keys.address.blobId, userId, error });
      throw error;
    });
  following.set(keys, next);
  return next;
}

async function follow(keys: DocKeys, trust: Trust, userId: string): Promise<boolean> {
  if (!(await retiredListing(keys, trust, userId))) return false;
  // The list as the relay has it now: a member removed, or followed by another of our devices,
  // meanwhile is not listed again.
  await keys.refreshMembers();
  const found = await retiredListing(keys, trust, userId);
  if (!found) return false;
  await keys.followMember(userId, found.level, found.pinned);
  return true;
}

/**
 * `userId`'s entry in the member list of `keys` (a blob this user owns) when it names keys a
 * verified rotation retired, with the keys pinned now; undefined otherwise.
 */
async function retiredListing(
  keys: DocKeys,
  trust: Trust,
  userId: string,
): Promise<{ level: ShareLevel; pinned: PublicKeys } | undefined> {
  if (keys.address.kind !== 'blob' || !keys.isOwner) return undefined;
  const member = keys.members?.members.find((m) => m.userId === userId);
  if (!member) return undefined;
  const pinned = await trust.pinned(userId);
  if (!pinned) return undefined;
  if (
    sameBytes(pinned.signPublicKey, member.signPublicKey) &&
    sameBytes(pinned.boxPublicKey, member.boxPublicKey)
  )
    return undefined;
  // The listed key must be one a verified rotation retired (the pin's history). Keys accepted by
  // hand clear that history: those are the app's to share again.
  const retired = (await trust.keyHistory(userId)).slice(0, -1);
  if (!retired.some((key) => sameBytes(key, member.signPublicKey))) return undefined;
  return { level: member.level, pinned };
}

/**
 * Asks the relay for `userId`'s keys: a signed rotation moves the pin (and emits `key-changed`
 * with `rotated: true`). `KeyChanged` for an unexplained change (the app decides) and
 * `Unavailable` when the relay cannot be asked now, instead of throwing; other errors throw.
 */
export async function learnKeys(trust: Trust, userId: string): Promise<'ok' | 'KeyChanged' | 'Unavailable'> {
  try {
    await trust.keysOf(userId);
    return 'ok';
  } catch (error) {
    if (error instanceof SyncError && (error.kind === 'KeyChanged' || error.kind === 'Unavailable'))
      return error.kind;
    throw error;
  }
}

/**
 * Asks the relay for `userId`'s keys (a signed rotation moves the pin and emits `key-changed`
 * with `rotated: true`), then follows it on the blob of `keys`. False, without throwing, when the
 * keys changed unexplained (`KeyChanged`: the app decides) or the relay cannot be asked now.
 */
export async function checkAndFollow(keys: DocKeys, trust: Trust, userId: string): Promise<boolean> {
  if (keys.address.kind !== 'blob' || !keys.isOwner) return false;
  // Only a listed member's keys are asked for: anyone else's are not ours to pin here.
  if (!keys.members?.members.some((m) => m.userId === userId)) return false;
  if ((await learnKeys(trust, userId)) !== 'ok') return false;
  return followRotation(keys, trust, userId);
}

/**
 * Whether `userId` moved from `listed` to `author` by verified identity rotations: the relay's
 * keys are asked for (the pin follows a signed chain), then `author` must be the pinned key and
 * `listed` one the chain retired. False for an unexplained change.
 */
export async function rotatedTo(
  trust: Trust,
  userId: string,
  listed: Uint8Array,
  author: Uint8Array,
): Promise<boolean> {
  if ((await learnKeys(trust, userId)) !== 'ok') return false;
  const pinned = await trust.pinned(userId);
  if (!pinned || !sameBytes(pinned.signPublicKey, author)) return false;
  return (await trust.keyHistory(userId)).slice(0, -1).some((key) => sameBytes(key, listed));
}
