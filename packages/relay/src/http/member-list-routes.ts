import { timingSafeEqual } from 'node:crypto';
import { blobAddress, SyncError } from '@scopesync/core';
import { checkMemberListStep, readMemberList, ready, verifyHead, verifyMemberList } from '@scopesync/crypto';
import { parseBase64, publicKeyBytes, toBase64Url } from '../credentials.ts';
import { signKeyHistory } from '../key-history.ts';
import { deniedError } from '../services/denied-error.ts';
import { readJsonObject } from './request.ts';
import { sendEmpty, sendJson } from './respond.ts';
import type { Route, RouteRequest, RouteServices } from './route.ts';

/** Largest member list accepted: 10 000 members of 86 bytes, base64 in JSON. */
const MAX_LIST_BYTES = 1_000_000;
const MAX_HEAD_BYTES = 256 * 1024;

/**
 * The trust records of encrypted blobs (docs/encryption.md, "Member lists and signed heads"):
 *
 * - `PUT /blob/<id>/members {list}` — the owner appends the next version of the blob's member
 *   list. The relay checks it is signed by the owner's registered key, names the owner and this
 *   blob, and follows the stored chain (version + 1, the previous hash, the key unchanged or one
 *   epoch up). From then on it accepts envelopes only under the (epoch, key id) pairs the chain
 *   names. A version that exists already is a Conflict: the chain cannot be rewritten.
 * - `GET /blob/<id>/members` — every version, oldest first, for anyone who may read the blob.
 * - `PUT /blob/<id>/heads/me {head}` — a member's signed head, signed with their registered key.
 * - `GET /blob/<id>/heads` — every member's latest signed head.
 *
 * Clients do not trust these checks: they verify the chain against the owner key they pinned.
 */
export function memberListRoutes(s: RouteServices): Route[] {
  const putList = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.user();
    const body = await readJsonObject(r.req, Math.min(MAX_LIST_BYTES * 2, s.maxBodyBytes));
    const bytes = parseBase64(body.list, 'list', 1, MAX_LIST_BYTES);
    await s.locks.run(address.name, async () => {
      const { decision } = await s.access.check(caller, 'share', address, { channel: 'http' });
      if (!decision.allowed) throw deniedError(decision, caller);
      const record = await s.store.getObject(address.name);
      if (!record) throw new SyncError('NotFound', `${address.name} does not exist`);
      if (!record.encrypted) throw new SyncError('Conflict', 'only encrypted blobs have member lists');
      if (record.owner !== caller.userId) {
        throw new SyncError('Forbidden', 'only the owner of an encrypted blob signs its member list');
      }
      const owner = await s.store.getUser(caller.userId);
      const ownerKey = publicKeyBytes(owner?.signPk ?? null);
      if (!ownerKey) {
        throw new SyncError(
          'Conflict',
          `no signing key is registered for ${caller.userId}: register one with PUT /users/${caller.userId}/keys`,
        );
      }
      await ready();
      const list = verifyMemberList(bytes, ownerKey, address.name);
      if (list.ownerId !== caller.userId)
        throw new SyncError('Forbidden', 'the member list names another owner');
      const stored = await s.store.listMemberLists(address.blobId);
      const last = stored.at(-1);
      const previous = last === undefined ? undefined : readMemberList(last.list);
      // The owner's first version after an identity rotation: signed by the new key, chaining one
      // the retired key signed.
      const handover =
        previous !== undefined &&
        !sameBytes(previous.ownerKey, ownerKey) &&
        (await signKeyHistory(s.store, caller.userId)).some((key) => sameBytes(key, previous.ownerKey));
      checkMemberListStep(previous, list, handover);
      const appended = await s.store.appendMemberList({
        blobId: address.blobId,
        version: list.version,
        epoch: list.epoch,
        keyId: list.keyId,
        list: bytes,
        createdAt: s.now(),
      });
      if (!appended) throw new SyncError('Conflict', `member list version ${list.version} exists`);
      sendJson(r.res, 200, {
        blob_id: address.blobId,
        version: list.version,
        epoch: list.epoch,
        key_id: list.keyId,
      });
    });
  };

  const getLists = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.caller();
    const { decision } = await s.access.check(caller, 'read', address, { channel: 'http' });
    if (!decision.allowed) throw deniedError(decision, caller);
    const lists = await s.store.listMemberLists(address.blobId);
    sendJson(r.res, 200, { blob_id: address.blobId, lists: lists.map((l) => toBase64Url(l.list)) });
  };

  const putHead = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.user();
    const body = await readJsonObject(r.req, Math.min(MAX_HEAD_BYTES * 2, s.maxBodyBytes));
    const bytes = parseBase64(body.head, 'head', 1, MAX_HEAD_BYTES);
    const { decision } = await s.access.check(caller, 'read', address, { channel: 'http' });
    if (!decision.allowed) throw deniedError(decision, caller);
    const user = await s.store.getUser(caller.userId);
    const signPk = publicKeyBytes(user?.signPk ?? null);
    if (!signPk) throw new SyncError('Conflict', `no signing key is registered for ${caller.userId}`);
    await ready();
    verifyHead(bytes, address.name, (key, userId) => userId === caller.userId && sameBytes(key, signPk));
    await s.store.putSignedHead({
      blobId: address.blobId,
      userId: caller.userId,
      head: bytes,
      updatedAt: s.now(),
    });
    sendEmpty(r.res, 204);
  };

  const getHeads = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.caller();
    const { decision } = await s.access.check(caller, 'read', address, { channel: 'http' });
    if (!decision.allowed) throw deniedError(decision, caller);
    const heads = await s.store.listSignedHeads(address.blobId);
    sendJson(r.res, 200, {
      blob_id: address.blobId,
      heads: heads.map((h) => ({ user_id: h.userId, head: toBase64Url(h.head), updated_at: h.updatedAt })),
    });
  };

  return [
    { pattern: ['blob', ':id', 'members'], methods: { GET: getLists, PUT: putList } },
    { pattern: ['blob', ':id', 'heads'], methods: { GET: getHeads } },
    { pattern: ['blob', ':id', 'heads', 'me'], methods: { PUT: putHead } },
  ];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
