import { timingSafeEqual } from 'node:crypto';
import { blobAddress, type KeyGrantRecord, parseUserId, SyncError } from '@scopesync/core';
import { ready, verifyGrantSignature } from '@scopesync/crypto';
import { parseBase64, publicKeyBytes, toBase64Url } from '../credentials.ts';
import { deniedError } from '../services/denied-error.ts';
import { readJsonObject } from './request.ts';
import { sendJson } from './respond.ts';
import type { Route, RouteRequest, RouteServices } from './route.ts';

/** Largest body of `PUT /blob/<id>/keys/<user>`: a sealed key (~101 bytes) and a grant (≤ 440). */
const MAX_GRANT_BODY = 16 * 1024;
const MAX_SEALED_KEY_BYTES = 1024;
const MAX_GRANT_BYTES = 2048;

/** A stored grant as the HTTP API shows it: binary fields in base64url. */
function grantBody(g: KeyGrantRecord): Record<string, unknown> {
  return {
    epoch: g.epoch,
    sealed_key: toBase64Url(g.sealedKey),
    grant: toBase64Url(g.grant),
    granted_by: g.grantedBy,
    granted_at: g.grantedAt,
  };
}

function epochField(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new SyncError('BadRequest', 'epoch must be an integer in 0..4294967295');
  }
  return value;
}

/**
 * Sealed document keys of encrypted blobs (docs/encryption.md):
 *
 * - `PUT /blob/<id>/keys/<user_id>` `{epoch, sealed_key, grant}` — the owner stores the blob's
 *   document key at `epoch`, sealed to a sharee's (or their own) box key, with the grant they
 *   signed. The relay cannot open the sealed key; it checks what it can: the grant is signed
 *   by the owner's registered signing key, names this blob and epoch, and is sealed to the
 *   user's registered box key. The user must be the owner or a sharee (404 otherwise).
 * - `GET /blob/<id>/keys/me` — the caller's grants for the blob (owner or sharee), by epoch.
 *
 * Revoking a share deletes the sharee's grants; deleting the blob deletes them all.
 */
export function keyGrantRoutes(s: RouteServices): Route[] {
  const put = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const userId = parseUserId(r.params.user as string);
    const caller = await r.user();
    const body = await readJsonObject(r.req, Math.min(MAX_GRANT_BODY, s.maxBodyBytes));
    const epoch = epochField(body.epoch);
    const sealedKey = parseBase64(body.sealed_key, 'sealed_key', 1, MAX_SEALED_KEY_BYTES);
    const grant = parseBase64(body.grant, 'grant', 1, MAX_GRANT_BYTES);
    // Under the blob's lock: a share revoked meanwhile (which deletes grants) cannot interleave.
    await s.locks.run(address.name, async () => {
      const { decision } = await s.access.check(caller, 'share', address, { channel: 'http' });
      if (!decision.allowed) throw deniedError(decision, caller);
      if (userId !== caller.userId) {
        const shares = await s.store.listShares(address.blobId);
        if (!shares.some((x) => x.userId === userId)) {
          throw new SyncError('NotFound', `no share with ${userId}: share the blob first`);
        }
      }
      const [owner, recipient] = await Promise.all([s.store.getUser(caller.userId), s.store.getUser(userId)]);
      const ownerSignPk = publicKeyBytes(owner?.signPk ?? null);
      if (!ownerSignPk) {
        throw new SyncError(
          'Conflict',
          `no signing key is registered for ${caller.userId}: register one with PUT /users/${caller.userId}/keys`,
        );
      }
      const recipientBoxPk = publicKeyBytes(recipient?.boxPk ?? null);
      if (!recipientBoxPk) throw new SyncError('Conflict', `${userId} has no box key registered`);
      await ready();
      const info = verifyGrantSignature(grant, [ownerSignPk]);
      if (info.blobId !== address.blobId) throw new SyncError('Forbidden', 'the grant is for another blob');
      if (info.epoch !== epoch) {
        throw new SyncError('BadRequest', `epoch ${epoch} does not match the grant's epoch ${info.epoch}`);
      }
      if (!sameBytes(info.recipientBoxPublicKey, recipientBoxPk)) {
        throw new SyncError('Forbidden', `the grant is not for the box key registered for ${userId}`);
      }
      const grantedAt = s.now();
      await s.store.putKeyGrant({
        blobId: address.blobId,
        userId,
        epoch,
        sealedKey,
        grant,
        grantedBy: caller.userId,
        grantedAt,
      });
      sendJson(r.res, 200, { blob_id: address.blobId, user_id: userId, epoch, granted_at: grantedAt });
    });
  };

  const mine = async (r: RouteRequest): Promise<void> => {
    const address = blobAddress(r.params.id as string);
    const caller = await r.user();
    const { decision } = await s.access.check(caller, 'read', address, { channel: 'http' });
    if (!decision.allowed) throw deniedError(decision, caller);
    const grants = await s.store.listKeyGrants(address.blobId, caller.userId);
    sendJson(r.res, 200, { blob_id: address.blobId, user_id: caller.userId, grants: grants.map(grantBody) });
  };

  return [
    { pattern: ['blob', ':id', 'keys', 'me'], methods: { GET: mine } },
    { pattern: ['blob', ':id', 'keys', ':user'], methods: { PUT: put } },
  ];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
