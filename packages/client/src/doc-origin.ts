/**
 * The `origin` of a Y.Doc transaction that a {@link DocHandle} makes itself, so its listeners
 * branch on `origin.source` instead of comparing identities:
 *
 * - `relay`: another client's edit, applied as the relay sent it (also remote awareness);
 * - `store`: the local store's copy, loaded when the handle opened;
 * - `reset`: the doc rebuilt from confirmed state after a refused edit or a wipe;
 * - `reseal`: unconfirmed edits made again after a key rotation (stored and sent like edits);
 * - `tab`: an edit another tab of this browser made, received over the tab channel (stored and
 *   sent like edits: the tabs may not share a store, and the relay merges duplicates).
 *
 * There is no `local` source: a user's edit keeps its own origin (null through
 * `DocHandle.transact`, or an editor binding's), because `Y.UndoManager` tracks edits by origin
 * and tracks only null by default. Any origin that is not a DocOrigin is a local edit.
 */
export type DocOrigin =
  | { readonly source: 'relay' }
  | { readonly source: 'store' }
  | { readonly source: 'reset' }
  | { readonly source: 'reseal' }
  | { readonly source: 'tab' };

/** The one origin object of each source (frozen: an origin is a value, not a place to keep state). */
export const DOC_ORIGINS: { readonly [S in DocOrigin['source']]: Extract<DocOrigin, { source: S }> } = {
  relay: Object.freeze({ source: 'relay' }),
  store: Object.freeze({ source: 'store' }),
  reset: Object.freeze({ source: 'reset' }),
  reseal: Object.freeze({ source: 'reseal' }),
  tab: Object.freeze({ source: 'tab' }),
};

/** The {@link DocOrigin} a transaction origin is, or undefined for anything else (a local edit). */
export function docOriginOf(origin: unknown): DocOrigin | undefined {
  if (typeof origin !== 'object' || origin === null || !('source' in origin)) return undefined;
  const { source } = origin;
  return typeof source === 'string' && Object.hasOwn(DOC_ORIGINS, source) ? (origin as DocOrigin) : undefined;
}
