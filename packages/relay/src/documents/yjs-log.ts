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
 * A fresh garbage-collecting Y.Doc holding a stored plaintext log, then whatever `more` applies,
 * in one transaction; `skipped` counts entries that are not Yjs updates (left out, as
 * {@link applyLog} does). The log is applied without decoding each entry first — that check cost
 * as much as the apply itself for a large snapshot — and only when the apply throws is the doc
 * dropped and built again entry by entry, checked: the first doc may hold part of the garbage.
 */
export function docFromLog(
  stored: readonly StoredEntry[],
  more?: (doc: Y.Doc) => void,
  guid = 'merge',
): { doc: Y.Doc; skipped: number } {
  // A given guid, not a random one: a relay document is never a subdocument, and lib0's uuidv4
  // draws 31 random numbers through WebCrypto (a fifth of a reload's CPU).
  const fast = new Y.Doc({ gc: true, guid });
  try {
    fast.transact(() => {
      for (const e of stored) Y.applyUpdate(fast, e.data);
      more?.(fast);
    });
    return { doc: fast, skipped: 0 };
  } catch {
    fast.destroy();
  }
  const doc = new Y.Doc({ gc: true, guid });
  let skipped = 0;
  try {
    doc.transact(() => {
      skipped = applyLog(doc, stored);
      more?.(doc);
    });
  } catch (error) {
    doc.destroy();
    throw error;
  }
  return { doc, skipped };
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
