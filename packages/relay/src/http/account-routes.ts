import { isLevel, Level, parseUserId, SyncError } from '@scopesync/core';
import { parseDeviceName } from '../credentials.ts';
import { readJsonObject } from './request.ts';
import { sendEmpty, sendJson } from './respond.ts';
import type { Route, RouteRequest, RouteServices } from './route.ts';

/** Largest body of a level change: `{"level": 10}` and some room. */
const MAX_LEVEL_BODY_BYTES = 1024;

/**
 * `POST /users/<id>/api-keys` with `{"device_name"?}`: an Admin issues a new API key for an
 * existing user (201 `{key, user_id}`, the only copy of the key). Audited like a level change.
 *
 * `PUT /users/<id>/level` with `{"level": 0|1|5|10}`: an Admin sets a user's level through the
 * running relay (what `scopesync-relay level set --relay-url` calls). It goes through
 * `AccountService.setLevel`, so the user's open sockets are decided again at the new level
 * before the answer: 204. 401 without a key, 403 for anyone but an Admin, 404 for an unknown
 * user. Every attempt by a user — granted or refused — is audited, with the user as target.
 */
export function accountRoutes(s: RouteServices): Route[] {
  /**
   * The admin-only part both routes share: the caller and target of `r`, and an audit of the
   * attempt on the target's `key`. A caller below Admin is audited as denied and refused.
   */
  const adminOnly = async (r: RouteRequest, key: string, action: string, refusal: string) => {
    const caller = await r.user();
    const target = parseUserId(r.params.id ?? '');
    const audit = (result: 'ok' | 'denied', reason: string) =>
      s.audit.record({
        accessor: caller.userId,
        target,
        scope: 'account',
        key,
        action,
        result,
        channel: 'http',
        reason,
      });
    if (caller.level < Level.Admin) {
      await audit('denied', refusal);
      throw new SyncError('Forbidden', refusal);
    }
    return { target, audit };
  };
  const setLevel = async (r: RouteRequest): Promise<void> => {
    const { target, audit } = await adminOnly(r, 'level', 'set-level', 'only admins change levels');
    const body = await readJsonObject(r.req, Math.min(MAX_LEVEL_BODY_BYTES, s.maxBodyBytes));
    const level = body.level;
    if (!isLevel(level)) throw new SyncError('BadRequest', 'level must be 0, 1, 5 or 10');
    await s.accounts.setLevel(target, level);
    await audit('ok', `level set to ${level}`);
    sendEmpty(r.res, 204);
  };
  const issueKey = async (r: RouteRequest): Promise<void> => {
    const { target, audit } = await adminOnly(
      r,
      'api-key',
      'issue-key',
      'only admins issue keys for other users',
    );
    const body = await readJsonObject(r.req, Math.min(MAX_LEVEL_BODY_BYTES, s.maxBodyBytes));
    const deviceName = body.device_name === undefined ? undefined : parseDeviceName(body.device_name);
    const { key, userId } = await s.accounts.issueKey(target, { deviceName });
    await audit('ok', deviceName === undefined ? 'key issued' : `key issued for ${deviceName}`);
    sendJson(r.res, 201, { key, user_id: userId });
  };
  return [
    { pattern: ['users', ':id', 'level'], methods: { PUT: setLevel } },
    { pattern: ['users', ':id', 'api-keys'], methods: { POST: issueKey } },
  ];
}
