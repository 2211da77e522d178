import { Level, parseUserId, SyncError } from '@scopesync/core';
import { apiKeyOf, hashApiKey, isApiKeyShaped, registerDevice } from '../credentials.ts';
import { readJsonObject } from './request.ts';
import { sendEmpty, sendJson } from './respond.ts';
import type { Route, RouteRequest, RouteServices } from './route.ts';

/** Largest body of a registration: a device name and two public keys. */
const MAX_REGISTRATION_BYTES = 16 * 1024;

/**
 * `POST /keys` (register a device), `GET /keys/validate`, `DELETE /keys/<key>` and
 * `GET /users/<user_id>/keys` (public keys for sharing).
 */
export function keyRoutes(s: RouteServices): Route[] {
  const register = async (r: RouteRequest): Promise<void> => {
    const body = await readJsonObject(r.req, Math.min(MAX_REGISTRATION_BYTES, s.maxBodyBytes));
    // HTTP only ever registers Users: the first admin comes from the CLI.
    const { key, userId } = await registerDevice(
      s.store,
      {
        deviceName: body.device_name as string,
        level: Level.User,
        signPk: body.sign_pk as string,
        boxPk: body.box_pk as string,
      },
      s.now(),
    );
    sendJson(r.res, 200, { key, user_id: userId });
  };

  const validate = async (r: RouteRequest): Promise<void> => {
    const key = apiKeyOf(r.req);
    if (key === null)
      throw new SyncError('Unauthorized', 'no API key: send x-api-key, Authorization: Bearer or ?key=');
    const user = await s.access.userOfKey(key);
    if (!user) throw new SyncError('Unauthorized', 'invalid or revoked API key');
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
    await s.store.revokeKey(hashApiKey(key), s.now());
    sendEmpty(r.res);
  };

  const publicKeys = async (r: RouteRequest): Promise<void> => {
    const userId = parseUserId(r.params.id as string);
    const user = await s.store.getUser(userId);
    if (!user) throw new SyncError('NotFound', `no user ${userId}`);
    sendJson(r.res, 200, { user_id: user.userId, sign_pk: user.signPk, box_pk: user.boxPk });
  };

  return [
    { pattern: ['keys'], methods: { POST: register } },
    { pattern: ['keys', 'validate'], methods: { GET: validate } },
    { pattern: ['keys', ':key'], methods: { DELETE: revoke } },
    { pattern: ['users', ':id', 'keys'], methods: { GET: publicKeys } },
  ];
}
