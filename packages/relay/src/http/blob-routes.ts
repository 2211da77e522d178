import { blobAddress, type ObjectRecord, SyncError } from '@scopesync/core';
import { answerDelete } from './delete-route.ts';
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
    encrypted: record.encrypted,
  };
}

/** The request header that creates a blob end-to-end encrypted on `PUT /blob/<id>`. */
export const ENCRYPTED_HEADER = 'x-scopesync-encrypted';

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
 * `GET /blob/<id>/meta`. Blobs belong to users, so every blob route needs an API key. A PUT
 * with `x-scopesync-encrypted: 1` creates the blob end-to-end encrypted (its document then
 * syncs only on the encrypted channel); a PUT whose header (absent = plaintext) does not match
 * an existing blob's mode is refused with 400.
 */
export function blobRoutes(s: RouteServices): Route[] {
  const put = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.user();
    const ifMatch = parseVersionHeader(r.req, 'if-match');
    const encrypted = encryptedHeader(r.req.headers[ENCRYPTED_HEADER]);
    const data = await readBody(r.req, s.maxBodyBytes);
    await s.mutex.run(address.name, async () => {
      const { decision } = await s.access.check(caller, 'write', address, { channel: 'http' });
      if (!decision.allowed) throw deniedError(decision, caller);
      const existing = await s.store.getObject(address.name);
      if (existing && existing.encrypted !== encrypted) {
        // Plaintext bytes must never land in an encrypted blob, nor sealed ones pass for plaintext.
        throw new SyncError(
          'BadRequest',
          existing.encrypted
            ? `this blob is end-to-end encrypted: PUT its sealed bytes with ${ENCRYPTED_HEADER}: 1`
            : `this blob is not end-to-end encrypted: PUT it without ${ENCRYPTED_HEADER}`,
        );
      }
      const now = s.now();
      // Created together with the bytes, in one transaction: a refused If-Match leaves nothing behind.
      const create = s.access.newObject(caller, address, { encrypted }, now);
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
    await answerDelete(s, r, await r.user(), address);
  };

  return [
    { pattern: ['blob', ':id'], methods: { GET: get, PUT: put, DELETE: del } },
    { pattern: ['blob', ':id', 'meta'], methods: { GET: meta } },
  ];
}
