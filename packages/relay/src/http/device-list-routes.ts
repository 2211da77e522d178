import { parseUserId, SyncError } from '@scopesync/core';
import { checkDeviceListStep, readDeviceList, ready, verifyDeviceList } from '@scopesync/crypto';
import { parseBase64, publicKeyBytes, toBase64Url } from '../credentials.ts';
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
 *   previous hash). 200 `{user_id, version}`; 403 otherwise (a rewritten version included); 409
 *   without a registered key, or when a concurrent append took the version first.
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
    await s.locks.run(`device-list:${userId}`, async () => {
      const identityKey = publicKeyBytes((await s.store.getUser(userId))?.signPk ?? null);
      if (!identityKey) {
        throw new SyncError(
          'Conflict',
          `no signing key is registered for ${userId}: register one with PUT /users/${userId}/keys`,
        );
      }
      await ready();
      const list = verifyDeviceList(bytes, identityKey, userId);
      const last = (await s.store.listDeviceLists(userId)).at(-1);
      checkDeviceListStep(last === undefined ? undefined : readDeviceList(last.list), list);
      const appended = await s.store.appendDeviceList({
        userId,
        version: list.version,
        list: bytes,
        createdAt: s.now(),
      });
      if (!appended) throw new SyncError('Conflict', `device list version ${list.version} exists`);
      sendJson(r.res, 200, { user_id: userId, version: list.version });
    });
  };

  const get = async (r: RouteRequest): Promise<void> => {
    const userId = parseUserId(r.params.id as string);
    if (!(await s.store.getUser(userId))) throw new SyncError('NotFound', `no user ${userId}`);
    const lists = await s.store.listDeviceLists(userId);
    sendJson(r.res, 200, { user_id: userId, lists: lists.map((l) => toBase64Url(l.list)) });
  };

  return [{ pattern: ['users', ':id', 'devices'], methods: { GET: get, PUT: put } }];
}
