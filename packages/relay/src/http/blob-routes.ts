import { blobAddress, SyncError } from '@scopesync/core';
import type { ObjectRecord } from '../relay-store.ts';
import { parseVersionHeader, readBody } from './request.ts';
import { sendEmpty, sendJson } from './respond.ts';
import { deniedError, type Route, type RouteRequest, type RouteServices } from './route.ts';

/** A blob's metadata as the HTTP API shows it. */
export function blobMetaBody(blobId: string, record: ObjectRecord): Record<string, unknown> {
  return {
    blob_id: blobId,
    owner: record.owner,
    version: record.version,
    size: record.size,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
  };
}

/**
 * `PUT/GET/DELETE /blob/<id>` (raw bytes; If-Match versions, 0 = must not exist; ETag) and
 * `GET /blob/<id>/meta`. Blobs belong to users, so every blob route needs an API key.
 */
export function blobRoutes(s: RouteServices): Route[] {
  const put = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.user();
    const ifMatch = parseVersionHeader(r.req, 'if-match');
    const data = await readBody(r.req, s.maxBodyBytes);
    await s.mutex.run(address.name, async () => {
      const { decision } = await s.access.check(caller, 'write', address, { channel: 'http' });
      if (!decision.allowed) throw deniedError(decision, caller);
      const now = s.now();
      // Created together with the bytes, in one transaction: a refused If-Match leaves nothing behind.
      const create = s.access.newObject(caller, address, {}, now);
      const record = await s.store.putBlobData(address.name, { data, expectedVersion: ifMatch, create, now });
      sendJson(r.res, 200, blobMetaBody(address.blobId, record), { etag: `"${record.version}"` });
    });
  };

  const get = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.user();
    const ifNoneMatch = parseVersionHeader(r.req, 'if-none-match');
    const { decision } = await s.access.check(caller, 'read', address, { channel: 'http' });
    if (!decision.allowed) throw deniedError(decision, caller);
    const [record, data] = await Promise.all([
      s.store.getObject(address.name),
      s.store.getBlobData(address.name),
    ]);
    if (!record || !data)
      throw new SyncError('NotFound', 'the blob has no raw bytes (it may be a collaborative document)');
    const etag = `"${record.version}"`;
    if (ifNoneMatch === record.version) {
      sendEmpty(r.res, 304, { etag });
      return;
    }
    r.res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(data.byteLength),
      etag,
      'cache-control': 'private, no-cache',
    });
    r.res.end(data);
  };

  const meta = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.user();
    const { decision } = await s.access.check(caller, 'read', address, { channel: 'http' });
    if (!decision.allowed) throw deniedError(decision, caller);
    const record = await s.store.getObject(address.name);
    if (!record) throw new SyncError('NotFound', 'not found');
    sendJson(r.res, 200, blobMetaBody(address.blobId, record), { etag: `"${record.version}"` });
  };

  const del = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.user();
    await s.mutex.run(address.name, async () => {
      const { decision } = await s.access.check(caller, 'delete', address, { channel: 'http' });
      if (!decision.allowed) throw deniedError(decision, caller);
      await s.store.deleteObject(address.name);
      // A blob may also be a collaborative document: remove it and end its subscriptions.
      await s.hub.remove(address.name);
      await s.refreshAccess(address.name);
      sendEmpty(r.res);
    });
  };

  return [
    { pattern: ['blob', ':id'], methods: { GET: get, PUT: put, DELETE: del } },
    { pattern: ['blob', ':id', 'meta'], methods: { GET: meta } },
  ];
}
