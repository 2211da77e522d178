import { parseUserId, SyncError } from '@scopesync/core';
import { parseBase64, toBase64Url } from '../credentials.ts';
import { readJsonObject } from './request.ts';
import { sendJson } from './respond.ts';
import type { Route, RouteRequest, RouteServices } from './route.ts';

/** Largest device list accepted: 1 000 devices of 88 bytes, base64 in JSON. */
const MAX_LIST_BYTES = 128 * 1024;

/**
 * A user's signed device list (docs/encryption.md, "Per-device keys"):
 *
 * - `PUT /users/<own id>/devices {list}` — appends the next version, signed by the user's
 *   registered (identity) key, for this user, following the stored chain (version + 1, the
 *   previous hash), and revokes the API keys registered for the devices it drops (their sockets
 *   close). 200 `{user_id, version, revoked_keys}`; 403 otherwise (a rewritten version
 *   included); 409 without a registered key, when a concurrent append took the version first,
 *   or for a version listing a device an earlier one dropped.
 * - `GET /users/<id>/devices` — every version, oldest first (public, like the keys).
 *
 * Clients do not trust these checks: they verify the chain against the identity keys they pinned
 * and refuse a chain shorter than, or different from, one they saw.
 */
export function deviceListRoutes(s: RouteServices): Route[] {
  const put = async (r: RouteRequest): Promise<void> => {
    const userId = parseUserId(r.params.id as string);
    const caller = await r.user();
    if (caller.userId !== userId) throw new SyncError('Forbidden', 'you can only sign your own device list');
    const body = await readJsonObject(r.req, Math.min(MAX_LIST_BYTES * 2, s.maxBodyBytes));
    const bytes = parseBase64(body.list, 'list', 1, MAX_LIST_BYTES);
    const { version, revokedKeys } = await s.devices.append(userId, bytes);
    sendJson(r.res, 200, { user_id: userId, version, revoked_keys: revokedKeys });
  };

  const get = async (r: RouteRequest): Promise<void> => {
    const userId = parseUserId(r.params.id as string);
    if (!(await s.store.getUser(userId))) throw new SyncError('NotFound', `no user ${userId}`);
    const lists = await s.store.listDeviceLists(userId);
    sendJson(r.res, 200, { user_id: userId, lists: lists.map((l) => toBase64Url(l.list)) });
  };

  return [{ pattern: ['users', ':id', 'devices'], methods: { GET: get, PUT: put } }];
}
