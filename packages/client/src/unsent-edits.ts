// Sends, on a fresh socket, the local edits of documents no handle holds open: a value written
// offline and released (userData.set of a private value, a doc the app closed), or left by a
// crash. Without this, such edits waited until the app opened that doc again.
import type { KeyValueStore } from '@scopesync/core';
import { KV_TABLES } from './client-store.ts';
import type { DocHandle } from './doc-handle.ts';
import type { DocMeta } from './local-doc-log.ts';

/** What {@link sendUnsentEdits} needs of the client. */
export interface UnsentEditsContext {
  /** The client's store of per-document metadata. */
  readonly kv: KeyValueStore;
  /**
   * Opens (or takes another reference to) a document, end-to-end encrypted when `encrypted` (a
   * blob's mode is not in its name); throws for one this client may not read.
   */
  open(name: string, encrypted: boolean): DocHandle;
  /** False once the socket went: the next socket sweeps again. */
  isOnline(): boolean;
}

/**
 * Opens every document marked as holding unsent edits and releases it at once: a released
 * handle with pending edits keeps syncing until the relay has them (or the socket goes), and
 * one with nothing pending clears the mark. Errors of one document do not stop the others.
 */
export async function sendUnsentEdits(ctx: UnsentEditsContext): Promise<void> {
  const marked = (await ctx.kv.list<DocMeta>(KV_TABLES.docs)).filter((entry) => entry.value.unsent === true);
  for (const { key, value } of marked) {
    if (!ctx.isOnline()) return;
    let handle: DocHandle;
    try {
      handle = ctx.open(key, value.encrypted === true);
    } catch {
      // No longer readable by this client, or an encrypted doc without a cipher: it stays marked.
      continue;
    }
    await handle.whenLoaded.catch(() => undefined);
    await handle.release();
  }
}
