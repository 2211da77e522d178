import { type KeyValueStore, SyncError } from '@scopesync/core';
import { KV_TABLES } from './client-store.ts';
import type { KeyApi } from './key-api.ts';

// Where an encrypted doc's keys are kept on this device, apart from the code that uses them:
// asking whether a blob is encrypted must not load libsodium.

/** The record (table `keys`) of `docName`'s keys on this device. */
export function docKeyRecord(docName: string): string {
  return `doc:${docName}`;
}

/** A document's keys as stored on this device (table `keys`, record `doc:<name>`). */
export interface StoredDocKeys {
  readonly v: 1;
  /** Every key held, each `wrapDocKey(kek, docName, key)`: never a key in the clear. */
  readonly wrapped: Uint8Array[];
  /** Envelopes under an older epoch are refused (raised by a snapshot under a newer key). */
  readonly minEpoch: number;
  /** `epoch:id` of the keys this device has stored on the relay (as the owner). */
  readonly uploaded: string[];
  /** A blob's owner, once known. */
  readonly owner?: string | undefined;
  /** A blob's member list, every version as signed by the owner (verified), oldest first. */
  readonly lists?: Uint8Array[] | undefined;
}

/** The record (table `keys`) of `docName`'s history marks on this device (see `doc-history.ts`). */
export function docHistoryRecord(docName: string): string {
  return `history:${docName}`;
}

/** A key's slot in {@link StoredDocKeys.uploaded}: `epoch:id`. */
export const keySlot = (key: { epoch: number; id: string }): string => `${key.epoch}:${key.id}`;

/** True when this device holds keys for `docName` (an encrypted doc it has opened before). */
export async function hasDocKeys(kv: KeyValueStore, docName: string): Promise<boolean> {
  return (await kv.get(KV_TABLES.keys, docKeyRecord(docName))) !== undefined;
}

/**
 * An owned blob this device never opened must have a key this user stored on the relay: else
 * loading it would make a fresh key, and a snapshot or member list under it would replace what
 * it cannot read (a device that wrote it offline and never uploaded its key). Unavailable then.
 */
export async function requireStoredKey(kv: KeyValueStore, api: KeyApi, name: string): Promise<void> {
  if (!name.startsWith('blob/') || (await hasDocKeys(kv, name))) return;
  if ((await api.myGrants(name.slice('blob/'.length))).length > 0) return;
  throw new SyncError(
    'Unavailable',
    `no key of ${name} is stored on the relay for you: open it on the device that wrote it, then try again`,
  );
}
