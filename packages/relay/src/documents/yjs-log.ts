import { type StoredEntry, SyncError } from '@scopesync/core';
import * as Y from 'yjs';

/**
 * Updates already validated: a socket's update is checked where it arrives (to answer its
 * sender precisely) and again by the hub (its own contract); the second check is free.
 */
const validated = new WeakSet<Uint8Array>();

/**
 * Throws SyncError('InvalidMessage') unless `update` decodes as a complete Yjs v1 update.
 * Decoding reads every struct and the delete set without touching any document.
 */
export function validateUpdate(update: Uint8Array): void {
  if (!(update instanceof Uint8Array) || update.length < 2) {
    throw new SyncError('InvalidMessage', 'a Yjs update needs at least 2 bytes');
  }
  if (validated.has(update)) return;
  try {
    Y.decodeUpdate(update);
  } catch (error) {
    throw new SyncError('InvalidMessage', 'malformed Yjs update', { cause: error });
  }
  validated.add(update);
}

/**
 * Whether `update` is the Yjs v1 update that holds nothing (no structs, no deletions): what a
 * client with an empty document sends as its SyncStep2. Applying it never changes a document.
 */
export function isEmptyUpdate(update: Uint8Array): boolean {
  return update.length === 2 && update[0] === 0 && update[1] === 0;
}

/**
 * Applies a stored plaintext log to `doc`, skipping entries that do not decode as Yjs updates
 * (garbage a client pushed through another channel must not make the document unloadable).
 * Returns how many were skipped.
 */
export function applyLog(doc: Y.Doc, stored: readonly StoredEntry[]): number {
  let skipped = 0;
  for (const e of stored) {
    try {
      Y.decodeUpdate(e.data);
    } catch {
      skipped += 1;
      continue;
    }
    Y.applyUpdate(doc, e.data);
  }
  return skipped;
}

/**
 * Merges a plaintext log into one update holding the same content. It goes through a fresh
 * garbage-collecting Y.Doc (as y-leveldb does) so that deleted content shrinks to GC structs;
 * pending structs (updates whose dependencies never arrived) are kept by `encodeStateAsUpdate`.
 */
export function mergeLog(stored: readonly StoredEntry[]): Uint8Array {
  // A fixed guid: a random one costs 31 WebCrypto draws and nothing reads it here.
  const doc = new Y.Doc({ gc: true, guid: 'merge' });
  try {
    doc.transact(() => applyLog(doc, stored));
    return Y.encodeStateAsUpdate(doc);
  } finally {
    doc.destroy();
  }
}

/**
 * The longest prefix of `stored` within `maxBytes` and `maxEntries`, but never empty when
 * `stored` is not: one entry larger than `maxBytes` still goes alone, or a reader could never
 * get past it.
 */
export function cutPage(
  stored: readonly StoredEntry[],
  maxBytes: number,
  maxEntries: number | undefined,
): readonly StoredEntry[] {
  const limit = maxEntries ?? Number.POSITIVE_INFINITY;
  let bytes = 0;
  let count = 0;
  for (const e of stored) {
    if (count > 0 && (bytes + e.data.length > maxBytes || count >= limit)) break;
    bytes += e.data.length;
    count += 1;
  }
  return count === stored.length ? stored : stored.slice(0, count);
}
