import { Level, parseUserId, SyncError, type UserKeys } from '@scopesync/core';
import { ready, verifyIdentityRotation, verifyIdentityRotationCountersignature } from '@scopesync/crypto';
import {
  apiKeyOf,
  generateApiKey,
  hashApiKey,
  isApiKeyShaped,
  PUBLIC_KEY_BYTES,
  parseBase64,
  parseDeviceId,
  parseDeviceName,
  publicKeyBytes,
  registerDevice,
  toBase64Url,
} from '../credentials.ts';
import { rotationChain } from '../key-history.ts';
import type { ProofPurpose } from '../key-proof.ts';
import { refuseRemovedDevice } from '../services/device-list-service.ts';
import { readJsonObject } from './request.ts';
import { sendEmpty, sendJson } from './respond.ts';
import type { Route, RouteRequest, RouteServices } from './route.ts';

/** Largest body of a registration: a device name, two public keys, a challenge and a proof. */
const MAX_REGISTRATION_BYTES = 16 * 1024;

/** The answer to a new user's registration on a relay with registration closed. */
const REGISTRATION_CLOSED =
  'registration is closed on this relay: sign in through the app (a token), or ask an admin for a key (docs/auth.md)';

/** Keys a request proved it holds, in the stored form (base64url). */
type ProvenKeys = { readonly signPk: string; readonly boxPk: string };

/**
 * `POST /keys/challenge`, `POST /keys` (register a device, or link it to the user holding the
 * signing key it proves; `device_id` binds the key to that device of the device list),
 * `GET /keys/validate`, `PUT /keys/device` (bind the caller's key to its device, once),
 * `DELETE /keys/<key>`, `GET /users/<id>/keys` (public keys for sharing) and
 * `PUT /users/<id>/keys` (register one's own keys later). docs/encryption.md has the flows.
 */
export function keyRoutes(s: RouteServices): Route[] {
  const challenge = async (r: RouteRequest): Promise<void> => {
    const issued = await s.challenges.issue();
    sendJson(r.res, 200, {
      challenge: issued.challenge,
      expires_at: issued.expiresAt,
      relay_id: issued.relayId,
    });
  };

  const register = async (r: RouteRequest): Promise<void> => {
    const body = await readJsonObject(r.req, Math.min(MAX_REGISTRATION_BYTES, s.maxBodyBytes));
    const deviceName = parseDeviceName(body.device_name);
    // The device list entry this key is for: a version of the list without it revokes the key.
    const deviceId = parseDeviceId(body.device_id);
    const bound = deviceId === undefined ? {} : { deviceId };
    const purpose = body.purpose ?? 'register';
    if (purpose !== 'register' && purpose !== 'link') {
      throw new SyncError(
        'BadRequest',
        'purpose is register (a new user) or link (a device of an existing user)',
      );
    }
    if (purpose === 'link' && (body.sign_pk === undefined || body.sign_pk === null)) {
      throw new SyncError('BadRequest', 'linking a device needs sign_pk, box_pk, challenge and proof');
    }
    const keys = await provenKeys(s, body, { purpose });
    // HTTP only ever registers Users: the first admin comes from the CLI.
    if (!keys) {
      if (s.registration === 'closed') throw new SyncError('Forbidden', REGISTRATION_CLOSED);
      const { key, userId } = await registerDevice(
        s.store,
        { deviceName, level: Level.User, ...bound },
        s.now(),
      );
      sendJson(r.res, 200, { key, user_id: userId, linked: false });
      return;
    }
    // One signing key is one user. Linking (a second device that imported the recovery phrase)
    // needs a user holding the key; registering needs none to, so a recovery phrase with a typo
    // never silently becomes a new, empty account. Serialised per key, so two devices of one
    // identity registering at once do not become two users.
    await s.locks.run(`sign-pk:${keys.signPk}`, async () => {
      const now = s.now();
      const existing = await s.store.findUserBySignPk(keys.signPk);
      if (purpose === 'link') {
        if (!existing) {
          throw new SyncError(
            'NotFound',
            'no user holds this signing key: check the recovery phrase (a phrase with a typo makes other keys)',
          );
        }
        const key = generateApiKey();
        // One transaction with the check: a list dropping the device cannot land in between.
        await s.store.transaction(async (tx) => {
          if (deviceId !== undefined) await refuseRemovedDevice(tx, existing.userId, deviceId);
          await tx.addKey({
            keyHash: hashApiKey(key),
            userId: existing.userId,
            createdAt: now,
            revokedAt: null,
            ...bound,
          });
        });
        // The proof endorses this box key too; both derive from the same seed, so they only
        // differ when the stored one was never set.
        if (existing.boxPk !== keys.boxPk) await s.store.setUserKeys(existing.userId, keys);
        sendJson(r.res, 200, { key, user_id: existing.userId, linked: true });
        return;
      }
      if (existing) {
        throw new SyncError(
          'Conflict',
          'a user holds this signing key already: link this device with purpose link and a link proof',
        );
      }
      await refuseRetired(s, keys.signPk);
      if (s.registration === 'closed') throw new SyncError('Forbidden', REGISTRATION_CLOSED);
      const { key, userId } = await registerDevice(
        s.store,
        { deviceName, level: Level.User, signPk: keys.signPk, boxPk: keys.boxPk, ...bound },
        now,
      );
      sendJson(r.res, 200, { key, user_id: userId, linked: false });
    });
  };

  const validate = async (r: RouteRequest): Promise<void> => {
    const key = apiKeyOf(r.req);
    if (key === null)
      throw new SyncError('Unauthorized', 'no API key: send x-api-key, Authorization: Bearer or ?key=');
    // An API key or, when the relay accepts them, an app token (docs/auth.md).
    const user = await s.access.authenticateKey(key);
    if (user.kind !== 'user') throw new SyncError('Unauthorized', 'invalid or revoked API key');
    sendJson(r.res, 200, { valid: true, user_id: user.userId, level: user.level });
  };

  const revoke = async (r: RouteRequest): Promise<void> => {
    const key = r.params.key as string;
    // Holding a key proves it is yours; a request signed with another key must be the same user's.
    const caller = await r.caller();
    const owner = isApiKeyShaped(key) ? await s.access.userOfKey(key) : null;
    if (!owner) throw new SyncError('NotFound', 'no such key (or already revoked)');
    if (caller.kind === 'user' && caller.userId !== owner.userId) {
      throw new SyncError('Forbidden', 'you can only revoke your own keys');
    }
    // Every later request with the key is refused by authentication; its open sockets close too.
    await s.accounts.revokeKey(hashApiKey(key));
    sendEmpty(r.res);
  };

  const bindDevice = async (r: RouteRequest): Promise<void> => {
    const caller = await r.user();
    const key = apiKeyOf(r.req);
    // An app token (docs/auth.md) is no stored key: it has no device to be bound to.
    if (key === null || !isApiKeyShaped(key)) {
      throw new SyncError('BadRequest', 'only an API key is bound to a device, not an app token');
    }
    const body = await readJsonObject(r.req, Math.min(MAX_REGISTRATION_BYTES, s.maxBodyBytes));
    const deviceId = parseDeviceId(body.device_id);
    if (deviceId === undefined) throw new SyncError('BadRequest', 'device_id is required');
    await s.devices.bindKey(caller.userId, hashApiKey(key), deviceId);
    sendJson(r.res, 200, { user_id: caller.userId, device_id: deviceId });
  };

  const publicKeys = async (r: RouteRequest): Promise<void> => {
    const userId = parseUserId(r.params.id as string);
    const user = await s.store.getUser(userId);
    if (!user) throw new SyncError('NotFound', `no user ${userId}`);
    // The rotation statements, oldest first: a client that pinned an earlier key follows them.
    const rotations = (await rotationChain(s.store, userId)).map((r) => ({
      sign_pk: r.signPk,
      next_sign_pk: r.nextSignPk,
      next_box_pk: r.nextBoxPk,
      relay_id: r.relayId,
      challenge: r.challenge,
      signature: toBase64Url(r.signature),
      countersignature: toBase64Url(r.countersignature),
      rotated_at: r.retiredAt,
    }));
    sendJson(r.res, 200, { user_id: user.userId, sign_pk: user.signPk, box_pk: user.boxPk, rotations });
  };

  const putPublicKeys = async (r: RouteRequest): Promise<void> => {
    const userId = parseUserId(r.params.id as string);
    const caller = await r.user();
    if (caller.userId !== userId) throw new SyncError('Forbidden', 'you can only register your own keys');
    const body = await readJsonObject(r.req, Math.min(MAX_REGISTRATION_BYTES, s.maxBodyBytes));
    const keys = await provenKeys(s, body, { purpose: 'set-keys', userId });
    if (!keys) throw new SyncError('BadRequest', 'sign_pk and box_pk are required, with challenge and proof');
    let revokedKeys: number | undefined;
    await s.locks.run(`sign-pk:${keys.signPk}`, async () => {
      const user = await s.store.getUser(userId);
      if (!user) throw new SyncError('NotFound', `no user ${userId}`);
      // A key stored before keys were checked (not 32 bytes) signs nothing: it may be replaced.
      const current = publicKeyBytes(user.signPk) ? user.signPk : null;
      const holder = await s.store.findUserBySignPk(keys.signPk);
      if (holder && holder.userId !== userId) {
        throw new SyncError(
          'Conflict',
          'this signing key belongs to another user: register this device with POST /keys and the proof to join that user',
        );
      }
      if (current !== keys.signPk) await refuseRetired(s, keys.signPk);
      if (current !== null && current !== keys.signPk) {
        if (body.rotation === undefined) {
          // Replacing it would let a stolen API key take over authorship of the user's documents.
          throw new SyncError(
            'Conflict',
            'another signing key is registered for this user: keys derive from the recovery phrase; to move to a new identity, send the rotation signed by the registered key (an admin can reset them)',
          );
        }
        const challenge = body.challenge as string;
        const { signature, countersignature } = checkRotation(s, body, {
          userId,
          challenge,
          oldSignPk: current,
          keys,
        });
        // One transaction: there is never a moment where the old key is neither the user's nor
        // retired (a thief registering it then would get a new, empty user under it).
        await s.store.transaction(async (tx) => {
          await tx.setUserKeys(userId, keys);
          await tx.retireSignKey({
            signPk: current,
            userId,
            nextSignPk: keys.signPk,
            nextBoxPk: keys.boxPk,
            relayId: s.challenges.relayId,
            challenge,
            signature,
            countersignature,
            retiredAt: s.now(),
          });
        });
        revokedKeys = await revokeOtherKeys(s, userId, apiKeyOf(r.req));
        return;
      }
      await s.store.setUserKeys(userId, keys);
    });
    const rotated = revokedKeys === undefined ? {} : { rotated: true, revoked_keys: revokedKeys };
    sendJson(r.res, 200, { user_id: userId, sign_pk: keys.signPk, box_pk: keys.boxPk, ...rotated });
  };

  return [
    { pattern: ['keys'], methods: { POST: register } },
    { pattern: ['keys', 'challenge'], methods: { POST: challenge } },
    { pattern: ['keys', 'validate'], methods: { GET: validate } },
    { pattern: ['keys', 'device'], methods: { PUT: bindDevice } },
    { pattern: ['keys', ':key'], methods: { DELETE: revoke } },
    { pattern: ['users', ':id', 'keys'], methods: { GET: publicKeys, PUT: putPublicKeys } },
  ];
}

/**
 * Checks an identity rotation (docs/encryption.md): `rotation` must be the registered key's
 * signature handing `userId` over to the proven keys, at this relay, over the same challenge, and
 * `countersignature` the new key's signature of the same statement. Forbidden otherwise;
 * BadRequest when either is not 64 bytes of base64. Returns both.
 */
function checkRotation(
  s: RouteServices,
  body: Record<string, unknown>,
  rotation: { userId: string; challenge: string; oldSignPk: string; keys: ProvenKeys },
): { signature: Uint8Array; countersignature: Uint8Array } {
  const signature = parseBase64(body.rotation, 'rotation', 64, 64);
  const countersignature = parseBase64(body.countersignature, 'countersignature', 64, 64);
  const oldSignPk = parseBase64(rotation.oldSignPk, 'registered sign_pk', PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES);
  const statement = {
    relayId: s.challenges.relayId,
    userId: rotation.userId,
    challenge: rotation.challenge,
    oldSignPk,
    newSignPk: parseBase64(rotation.keys.signPk, 'sign_pk', PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES),
    newBoxPk: parseBase64(rotation.keys.boxPk, 'box_pk', PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES),
  };
  if (!verifyIdentityRotation(statement, signature)) {
    throw new SyncError(
      'Forbidden',
      "rotation is not the registered signing key's signature handing this user to these keys at this relay",
    );
  }
  if (!verifyIdentityRotationCountersignature(statement, countersignature)) {
    throw new SyncError(
      'Forbidden',
      "countersignature is not the new signing key's signature of the rotation",
    );
  }
  return { signature, countersignature };
}

/**
 * Conflict when `signPk` was retired by an identity rotation: whoever kept the old seed (a lost
 * device) must not come back under it, not even as a new, empty user.
 */
async function refuseRetired(s: RouteServices, signPk: string): Promise<void> {
  if (await s.store.getRetiredKey(signPk)) {
    throw new SyncError(
      'Conflict',
      'this signing key was retired by an identity rotation: it registers nothing again (use the new recovery phrase)',
    );
  }
}

/**
 * After a rotation, every API key of the user but the one that asked is revoked (their sockets
 * close at once): a lost device's key goes with the identity it held. Resolves with how many.
 */
async function revokeOtherKeys(s: RouteServices, userId: string, keep: string | null): Promise<number> {
  const keepHash = keep === null ? null : hashApiKey(keep);
  let revoked = 0;
  for (const key of await s.store.listKeys(userId)) {
    if (key.revokedAt !== null || key.keyHash === keepHash) continue;
    await s.accounts.revokeKey(key.keyHash);
    revoked++;
  }
  return revoked;
}

/**
 * The public keys a registration carries, after checking the proof of the signing key (see
 * `key-proof.ts`): null when it carries none. sign_pk and box_pk come together, each 32 bytes in
 * base64 or base64url, with `challenge` (from POST /keys/challenge) and `proof`.
 */
async function provenKeys(
  s: RouteServices,
  body: Record<string, unknown>,
  purpose: ProofPurpose,
): Promise<ProvenKeys | null> {
  const hasSign = body.sign_pk !== undefined && body.sign_pk !== null;
  const hasBox = body.box_pk !== undefined && body.box_pk !== null;
  if (!hasSign && !hasBox) return null;
  if (!hasSign || !hasBox) {
    throw new SyncError('BadRequest', 'sign_pk and box_pk are registered together');
  }
  const sign = parseBase64(body.sign_pk, 'sign_pk', PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES);
  const box = parseBase64(body.box_pk, 'box_pk', PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES);
  if (body.challenge === undefined || body.proof === undefined) {
    throw new SyncError(
      'BadRequest',
      'registering keys needs a proof: sign the challenge of POST /keys/challenge with the sign key (docs/encryption.md)',
    );
  }
  // The proof is checked with libsodium (crypto's verifyKeyProof): load it first.
  await ready();
  await s.challenges.redeem(body.challenge, body.proof, sign, box, purpose);
  const keys: UserKeys & ProvenKeys = { signPk: toBase64Url(sign), boxPk: toBase64Url(box) };
  return keys;
}
