import { type Address, parseDocName, SyncError } from '@scopesync/core';

/** Which sync endpoint an upgrade request asks for. */
export type SyncTarget = { readonly kind: 'mux' } | { readonly kind: 'doc'; readonly address: Address };

/**
 * Parses the path of a sync upgrade request: `/sync` (multiplexed) or `/sync/<doc name>`
 * (single document), the name either percent-encoded as one segment
 * (`/sync/USER_PUBLIC%2Fuser_…%2Fnotes`) or raw with its slashes (what y-websocket sends).
 * Returns null for a path outside `/sync`; throws SyncError('BadRequest') for a bad name.
 */
export function parseSyncPath(url: string | undefined): SyncTarget | null {
  let pathname: string;
  try {
    pathname = new URL(url ?? '/', 'http://relay.invalid').pathname;
  } catch {
    throw new SyncError('BadRequest', 'malformed request URL');
  }
  if (pathname === '/sync' || pathname === '/sync/') return { kind: 'mux' };
  if (!pathname.startsWith('/sync/')) return null;
  let name: string;
  try {
    name = decodeURIComponent(pathname.slice('/sync/'.length));
  } catch {
    throw new SyncError('BadRequest', 'malformed percent-encoding in the document name');
  }
  return { kind: 'doc', address: parseDocName(name) };
}
