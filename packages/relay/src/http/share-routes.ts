import { blobAddress, isShareLevel, parseUserId, SyncError } from '@scopesync/core';
import { readJsonObject } from './request.ts';
import { sendEmpty, sendJson } from './respond.ts';
import type { Route, RouteRequest, RouteServices } from './route.ts';

/**
 * `POST/GET /share/<blob_id>`, `DELETE /share/<blob_id>/<user_id>` and `GET /shares/incoming`
 * (the blobs shared with the caller). Only the blob's owner
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
    const share = await s.shares.share(caller, address, userId, body.access_level);
    sendJson(r.res, 200, {
      blob_id: share.blobId,
      user_id: share.userId,
      access_level: share.level,
      granted_at: share.grantedAt,
    });
  };

  const list = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.blob as string);
    const caller = await r.user();
    const shares = await s.shares.list(caller, address);
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
    await s.shares.revoke(caller, address, userId);
    sendEmpty(r.res);
  };

  const incoming = async (r: RouteRequest): Promise<void> => {
    const caller = await r.user();
    const shares = await s.shares.incoming(caller);
    sendJson(r.res, 200, {
      shares: shares.map((x) => ({
        blob_id: x.blobId,
        owner: x.owner,
        access_level: x.level,
        granted_by: x.grantedBy,
        granted_at: x.grantedAt,
      })),
    });
  };

  return [
    { pattern: ['shares', 'incoming'], methods: { GET: incoming } },
    { pattern: ['share', ':blob'], methods: { GET: list, POST: share } },
    { pattern: ['share', ':blob', ':user'], methods: { DELETE: revoke } },
  ];
}
