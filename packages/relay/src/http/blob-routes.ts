import { blobAddress, type ObjectRecord, SyncError } from '@scopesync/core';
import { ENCRYPTED_HEADER } from '../services/blob-service.ts';
import { intParam, parseVersionHeader, readBody } from './request.ts';
import { sendEmpty, sendJson } from './respond.ts';
import type { Route, RouteRequest, RouteServices } from './route.ts';

/** A blob's metadata as the HTTP API shows it. */
export function blobMetaBody(blobId: string, record: ObjectRecord): Record<string, unknown> {
  return {
    blob_id: blobId,
    owner: record.owner,
    version: record.version,
    size: record.size,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
    encrypted: record.encrypted,
  };
}

/** Blobs one page of `GET /blobs/mine` returns at most. */
const MAX_OWNED_LIMIT = 1000;

/** Whether a PUT asks for an encrypted blob: `1`/`true`, or absent; BadRequest for anything else. */
function encryptedHeader(value: string | string[] | undefined): boolean {
  if (value === undefined) return false;
  const text = (Array.isArray(value) ? value.join(',') : value).trim().toLowerCase();
  if (text === '1' || text === 'true') return true;
  if (text === '0' || text === 'false') return false;
  throw new SyncError('BadRequest', `${ENCRYPTED_HEADER} must be 1 or 0`);
}

/**
 * `PUT/GET/DELETE /blob/<id>` (raw bytes; If-Match versions, 0 = must not exist; ETag) and
 * `GET /blob/<id>/meta`, and `GET /blobs/mine?limit=&after=` (the blobs the caller owns, by id,
 * paged). Blobs belong to users, so every blob route needs an API key. A PUT
 * with `x-scopesync-encrypted: 1` creates the blob end-to-end encrypted (its document then
 * syncs only on the encrypted channel); a PUT whose header (absent = plaintext) does not match
 * an existing blob's mode is refused with 400.
 */
export function blobRoutes(s: RouteServices): Route[] {
  const put = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.user();
    const ifVersion = parseVersionHeader(r.req, 'if-match');
    const encrypted = encryptedHeader(r.req.headers[ENCRYPTED_HEADER]);
    await s.blobs.refuseBeforeBody(caller, address, ifVersion);
    const data = await readBody(r.req, s.maxBodyBytes);
    const record = await s.blobs.put(caller, address, { data, ifVersion, encrypted });
    sendJson(r.res, 200, blobMetaBody(address.blobId, record), { etag: `"${record.version}"` });
  };

  const get = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.user();
    const ifNoneMatch = parseVersionHeader(r.req, 'if-none-match');
    const { record, data } = await s.blobs.get(caller, address);
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
    const record = await s.blobs.meta(await r.user(), address);
    sendJson(r.res, 200, blobMetaBody(address.blobId, record), { etag: `"${record.version}"` });
  };

  // "My blobs": the caller's own only, a page at a time (`after` is the `next` of the page before).
  const owned = async (r: RouteRequest): Promise<void> => {
    const caller = await r.user();
    const limit = intParam(r.query, 'limit', 1, MAX_OWNED_LIMIT, 100);
    const rawAfter = r.query.get('after');
    const after = rawAfter === null || rawAfter === '' ? undefined : blobAddress(rawAfter).blobId;
    const records = await s.blobs.listOwned(caller, after, limit + 1);
    const page = records.slice(0, limit);
    const blobIds = page.map((record) => record.name.slice('blob/'.length));
    sendJson(r.res, 200, {
      blobs: page.map((record, i) => blobMetaBody(blobIds[i] as string, record)),
      next: records.length > limit ? (blobIds.at(-1) ?? null) : null,
    });
  };

  const del = async (r: RouteRequest): Promise<void> => {
    await s.objects.remove(await r.user(), blobAddress(r.params.id as string), 'http');
    sendEmpty(r.res);
  };

  return [
    { pattern: ['blob', ':id'], methods: { GET: get, PUT: put, DELETE: del } },
    { pattern: ['blob', ':id', 'meta'], methods: { GET: meta } },
    { pattern: ['blobs', 'mine'], methods: { GET: owned } },
  ];
}
