import { blobAddress, isShareLevel, parseUserId, SyncError } from '@scopesync/core';
import { readJsonObject } from './request.ts';
import { sendEmpty, sendJson } from './respond.ts';
import { deniedError, type Route, type RouteRequest, type RouteServices } from './route.ts';

/**
 * `POST/GET /share/<blob_id>` and `DELETE /share/<blob_id>/<user_id>`. Only the blob's owner
 * shares and revokes (core's `decide()`: a sharee re-sharing would widen the audience behind
 * the owner's back); the owner and sharees may list. Every change re-checks live
 * subscriptions, so a revoked sharee's socket loses the document at once.
 */
export function shareRoutes(s: RouteServices): Route[] {
  const share = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.blob as string);
    const caller = await r.user();
    const body = await readJsonObject(r.req, s.maxBodyBytes);
    if (typeof body.user_id !== 'string') throw new SyncError('BadRequest', 'user_id must be a user id');
    const userId = parseUserId(body.user_id);
    if (!isShareLevel(body.access_level))
      throw new SyncError('BadRequest', 'access_level must be read_only or read_write');
    const level = body.access_level;
    if (userId === caller.userId) throw new SyncError('BadRequest', 'you cannot share a blob with yourself');
    await s.mutex.run(address.name, async () => {
      const { decision } = await s.access.check(caller, 'share', address, { channel: 'http' });
      if (!decision.allowed) throw deniedError(decision, caller);
      if (!(await s.store.getUser(userId))) throw new SyncError('NotFound', `no user ${userId}`);
      const grantedAt = s.now();
      await s.store.putShare({ blobId: address.blobId, userId, level, grantedBy: caller.userId, grantedAt });
      // A downgrade (read_write → read_only) must reach a live socket too.
      await s.refreshAccess(address.name);
      sendJson(r.res, 200, {
        blob_id: address.blobId,
        user_id: userId,
        access_level: level,
        granted_at: grantedAt,
      });
    });
  };

  const list = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.blob as string);
    const caller = await r.user();
    const { decision } = await s.access.check(caller, 'list', address, { channel: 'http' });
    if (!decision.allowed) throw deniedError(decision, caller);
    const shares = await s.store.listShares(address.blobId);
    sendJson(r.res, 200, {
      blob_id: address.blobId,
      shares: shares.map((x) => ({
        user_id: x.userId,
        access_level: x.level,
        granted_by: x.grantedBy,
        granted_at: x.grantedAt,
      })),
    });
  };

  const revoke = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.blob as string);
    const userId = parseUserId(r.params.user as string);
    const caller = await r.user();
    await s.mutex.run(address.name, async () => {
      const { decision } = await s.access.check(caller, 'share', address, { channel: 'http' });
      if (!decision.allowed) throw deniedError(decision, caller);
      if (!(await s.store.deleteShare(address.blobId, userId)))
        throw new SyncError('NotFound', `no share with ${userId}`);
      await s.refreshAccess(address.name);
      sendEmpty(r.res);
    });
  };

  return [
    { pattern: ['share', ':blob'], methods: { GET: list, POST: share } },
    { pattern: ['share', ':blob', ':user'], methods: { DELETE: revoke } },
  ];
}
