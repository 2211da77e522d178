import { type Address, parseDocName, SyncError } from '@scopesync/core';
import { WRAPPED_DOC_KEY_BYTES } from '@scopesync/crypto';
import type { UserCaller } from '../access-control.ts';
import { toBase64Url } from '../credentials.ts';
import { deniedError } from '../services/denied-error.ts';
import { readBody } from './request.ts';
import { sendEmpty, sendJson } from './respond.ts';
import type { Route, RouteRequest, RouteServices } from './route.ts';

/** Largest body of `PUT /doc-keys/…`: a wrapped key is 93 bytes. */
const MAX_WRAPPED_BODY = 1024;
/** Offsets in a wrapped key (@scopesync/crypto `wrapDocKey`): version, epoch (u32 BE), key id. */
const WRAPPED_VERSION = 1;
const KEY_ID = /^[0-9a-f]{32}$/;

/**
 * The owner's wrapped document keys (docs/encryption.md): how a second device of the owner —
 * same recovery phrase, same KEK — gets the keys of encrypted documents the first one created.
 *
 * - `PUT /doc-keys/<doc name>/<key_id>` raw body: the 93-byte output of `wrapDocKey` for that
 *   key id → 204. The first write of a key id wins (a repeat changes nothing, still 204).
 * - `GET /doc-keys/<doc name>` → `{keys: [{key_id, epoch, wrapped}]}`, oldest epoch first.
 *
 * The doc name (one percent-encoded segment) is `USER_PRIVATE/<owner>/<key>` — any time, only
 * its owner — or `blob/<id>` of an existing encrypted blob, only its owner (sharees get keys
 * through grants). The relay cannot open a wrapped key; it checks the layout's public header.
 * Deleting the document deletes its wrapped keys.
 */
export function docKeyRoutes(s: RouteServices): Route[] {
  /** Checks that the caller owns `address` for `action`; the blob's metadata must say encrypted. */
  const authorize = async (caller: UserCaller, address: Address, action: 'read' | 'write'): Promise<void> => {
    if (address.kind === 'doc') {
      if (address.scope !== 'USER_PRIVATE') {
        throw new SyncError(
          'BadRequest',
          'only USER_PRIVATE documents and encrypted blobs have wrapped keys',
        );
      }
      // 'list', not 'read': the keys exist before the document's first write creates it.
      const asked = action === 'read' ? 'list' : 'write';
      const { decision } = await s.access.check(caller, asked, address, { channel: 'http' });
      if (!decision.allowed) throw deniedError(decision, caller);
      // decide() lets admins act on others' data in places; wrapped keys are the owner's alone.
      if (address.namespace !== caller.userId)
        throw new SyncError('Forbidden', 'only the owner keeps its keys');
      return;
    }
    const { decision } = await s.access.check(caller, action === 'write' ? 'share' : 'read', address, {
      channel: 'http',
    });
    if (!decision.allowed) throw deniedError(decision, caller);
    const record = await s.store.getObject(address.name);
    if (!record) throw new SyncError('NotFound', 'the blob does not exist yet');
    if (record.owner !== caller.userId) {
      throw new SyncError('Forbidden', 'only the owner keeps wrapped keys of a blob; sharees get grants');
    }
    if (!record.encrypted) throw new SyncError('Conflict', 'this blob is not end-to-end encrypted');
  };

  const put = async (r: RouteRequest): Promise<void> => {
    const address = parseDocName(r.params.doc as string);
    const keyId = r.params.keyId as string;
    if (!KEY_ID.test(keyId))
      throw new SyncError('BadRequest', 'the key id must be 32 lowercase hex characters');
    const caller = await r.user();
    const wrapped = await readBody(r.req, Math.min(MAX_WRAPPED_BODY, s.maxBodyBytes));
    if (wrapped.length !== WRAPPED_DOC_KEY_BYTES || wrapped[0] !== WRAPPED_VERSION) {
      throw new SyncError('BadRequest', `a wrapped key is the ${WRAPPED_DOC_KEY_BYTES} bytes of wrapDocKey`);
    }
    if (Buffer.from(wrapped.subarray(5, 21)).toString('hex') !== keyId) {
      throw new SyncError('BadRequest', 'the wrapped key holds another key id than the path names');
    }
    const epoch = new DataView(wrapped.buffer, wrapped.byteOffset, wrapped.byteLength).getUint32(1, false);
    await s.locks.run(address.name, async () => {
      await authorize(caller, address, 'write');
      await s.store.putWrappedKey({ docName: address.name, keyId, epoch, wrapped, createdAt: s.now() });
    });
    sendEmpty(r.res);
  };

  const list = async (r: RouteRequest): Promise<void> => {
    const address = parseDocName(r.params.doc as string);
    const caller = await r.user();
    await authorize(caller, address, 'read');
    const keys = await s.store.listWrappedKeys(address.name);
    sendJson(r.res, 200, {
      keys: keys.map((k) => ({ key_id: k.keyId, epoch: k.epoch, wrapped: toBase64Url(k.wrapped) })),
    });
  };

  return [
    { pattern: ['doc-keys', ':doc'], methods: { GET: list } },
    { pattern: ['doc-keys', ':doc', ':keyId'], methods: { PUT: put } },
  ];
}
