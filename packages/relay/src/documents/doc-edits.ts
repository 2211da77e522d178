import { SyncError } from '@scopesync/core';
import * as Y from 'yjs';
import type { ChangeOrigin } from '../events/relay-events.ts';
import type { DocEntry } from './doc-registry.ts';

/**
 * Runs `fn` on the entry's loaded document in one Yjs transaction and returns the update it
 * made, or null when it changed nothing. `fn` must be synchronous; if it throws, the entry is
 * marked stale (its changes are in memory but will not be stored) and the error passes on.
 */
export function transactOn(
  entry: DocEntry,
  fn: (doc: Y.Doc) => void,
  origin: ChangeOrigin,
): Uint8Array | null {
  const doc = entry.doc as Y.Doc;
  let update: Uint8Array | null = null;
  const capture = (u: Uint8Array): void => {
    update = update === null ? u : Y.mergeUpdates([update, u]);
  };
  doc.on('update', capture);
  entry.writing = true;
  try {
    doc.transact((tr) => {
      const result: unknown = fn(tr.doc);
      if (result !== null && typeof result === 'object' && 'then' in result) {
        // Changes after an await would land outside this transaction, uncaptured and unstored.
        throw new SyncError('BadRequest', 'DocHub.transact needs a synchronous function');
      }
    }, origin);
  } catch (error) {
    // Reload before the next use, so the discarded changes vanish from memory too.
    if (update !== null) entry.stale = true;
    throw error;
  } finally {
    entry.writing = false;
    doc.off('update', capture);
  }
  return update;
}

/**
 * Applies a validated Yjs update to the entry's loaded document; returns whether it must be
 * stored. That includes an update whose dependencies are missing: it changes only the pending
 * set, but would be lost when the document is evicted or the relay restarts if not stored.
 * Throws SyncError('InvalidMessage') (and marks the entry stale) when integration fails.
 */
export function applyOn(entry: DocEntry, update: Uint8Array, origin: ChangeOrigin): boolean {
  const doc = entry.doc as Y.Doc;
  const pendingBefore = pendingOf(doc);
  let changed = false;
  const onCleanup = (tr: Y.Transaction): void => {
    changed ||= changedBy(tr);
  };
  doc.on('afterTransactionCleanup', onCleanup);
  entry.writing = true;
  try {
    Y.applyUpdate(doc, update, origin);
  } catch (error) {
    // Decoding passed but integration failed half-way: the doc may hold part of it.
    entry.stale = true;
    throw new SyncError('InvalidMessage', 'the Yjs update could not be applied', { cause: error });
  } finally {
    entry.writing = false;
    doc.off('afterTransactionCleanup', onCleanup);
  }
  return changed || pendingChanged(doc, pendingBefore);
}

/** What a document holds but cannot integrate yet (updates whose dependencies are missing). */
export interface PendingMark {
  readonly structs: Uint8Array | null;
  readonly ds: Uint8Array | null;
}

/** The document's pending updates now, to compare with {@link pendingChanged} after an apply. */
export function pendingOf(doc: Y.Doc): PendingMark {
  return { structs: doc.store.pendingStructs?.update ?? null, ds: doc.store.pendingDs };
}

/**
 * Whether the pending updates changed since `before`: an update went pending (or a pending one
 * was integrated). Yjs replaces these buffers whenever they change, so identity is enough.
 */
export function pendingChanged(doc: Y.Doc, before: PendingMark): boolean {
  return (doc.store.pendingStructs?.update ?? null) !== before.structs || doc.store.pendingDs !== before.ds;
}

/**
 * Whether a finished transaction changed the document: Yjs's own test for emitting `update`
 * (new structs or deletions). Listening for `update` instead would make Yjs encode every
 * transaction's update, which the relay never uses: it stores and forwards the bytes it got.
 */
export function changedBy(tr: Y.Transaction): boolean {
  if (tr.deleteSet.clients.size > 0) return true;
  for (const [client, clock] of tr.afterState) {
    if (tr.beforeState.get(client) !== clock) return true;
  }
  return false;
}
