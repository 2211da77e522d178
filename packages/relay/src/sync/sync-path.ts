import { type Address, parseDocName, SyncError } from '@scopesync/core';
import { requestPath } from '../http/request.ts';

/** Which sync endpoint an upgrade request asks for. */
export type SyncTarget = { readonly kind: 'mux' } | { readonly kind: 'doc'; readonly address: Address };

const MUX: SyncTarget = Object.freeze({ kind: 'mux' });

/**
 * Parses the path of a sync upgrade request: `/sync` (multiplexed) or `/sync/<doc name>`
 * (single document), the name either percent-encoded as one segment
 * (`/sync/USER_PUBLIC%2Fuser_…%2Fnotes`) or raw with its slashes (what y-websocket sends).
 * Returns null for a path outside `/sync`; throws SyncError('BadRequest') for a bad name or a
 * target that is not a path (see `requestPath`: read as sent, no `new URL` per upgrade, so
 * `/sync/a/../b` is a bad name rather than `/sync/b`).
 */
export function parseSyncPath(url: string | undefined): SyncTarget | null {
  const pathname = requestPath(url ?? '/');
  if (pathname === '/sync' || pathname === '/sync/') return MUX;
  if (!pathname.startsWith('/sync/')) return null;
  let name: string;
  try {
    name = decodeURIComponent(pathname.slice('/sync/'.length));
  } catch {
    throw new SyncError('BadRequest', 'malformed percent-encoding in the document name');
  }
  return { kind: 'doc', address: parseDocName(name) };
}
