import { Level } from '@scopesync/core';
import { deriveIdentity, generateRootSeed, ready } from '@scopesync/crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { mustOpen } from './support/auth-sockets.ts';
import { b64, keyRegistration } from './support/key-registration.ts';
import { useTestRelay } from './support/start-test-relay.ts';

// With registration closed (`--registration closed`), nobody can make themselves a user with
// POST /keys; existing users get keys from the runtime, an admin's HTTP call or the CLI, and a
// device proving an existing user's signing key still joins that user.

const t = useTestRelay({ auth: { registration: 'closed' } });
const keys = keyRegistration((method, path, options) => t.api(method, path, options));

beforeAll(() => ready());

describe('registration closed', () => {
  it('refuses a new user with 403 and says why', async () => {
    const plain = await t.api('POST', '/keys', { body: { device_name: 'stranger' } });
    expect(plain.status).toBe(403);
    expect(plain.json).toMatchObject({ error: 'Forbidden' });
    expect(plain.json.message).toContain('registration is closed');
    // With fresh public keys (and a valid proof) it is still a new user: refused.
    const identity = deriveIdentity(generateRootSeed());
    const withKeys = await t.api('POST', '/keys', {
      body: { device_name: 'stranger', ...(await keys.keysBody(identity)) },
    });
    expect(withKeys.status).toBe(403);
  });

  it('lets a device that proves an existing user’s signing key join that user', async () => {
    const identity = deriveIdentity(generateRootSeed());
    const existing = await t.relay.runtime.createUser({
      deviceName: 'laptop',
      signPk: b64(identity.signPublicKey),
      boxPk: b64(identity.boxPublicKey),
    });
    const linked = await t.api('POST', '/keys', {
      body: { device_name: 'phone', ...(await keys.keysBody(identity, { purpose: 'link' })) },
    });
    expect(linked.status).toBe(200);
    expect(linked.json).toMatchObject({ user_id: existing.userId, linked: true });
  });
});

describe('issuing a key for an existing user', () => {
  it('runtime.issueKey gives a key that works on HTTP and sync, and refuses an unknown user', async () => {
    const { userId, key: first } = await t.user('app-user');
    const issued = await t.relay.runtime.issueKey(userId, { deviceName: 'server-side worker' });
    expect(issued.userId).toBe(userId);
    expect(issued.key).not.toBe(first);
    const validated = await t.api('GET', '/keys/validate', { key: issued.key });
    expect(validated.json).toMatchObject({ valid: true, user_id: userId });
    const mux = await mustOpen(t.wsUrl, '/sync', { subprotocol: issued.key });
    mux.send(`USER_PRIVATE/${userId}/notes`, { type: 'subscribe', mode: 'encrypted', sinceSeq: 0 });
    expect(await mux.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });
    mux.ws.close();
    await expect(t.relay.runtime.issueKey('user_0000000000000000')).rejects.toMatchObject({
      kind: 'NotFound',
    });
  });

  it('POST /users/<id>/api-keys: an admin gets 201 and a working key; anyone else 403', async () => {
    const admin = await t.user('admin', Level.Admin);
    const moderator = await t.user('moderator', Level.Moderator);
    const { userId } = await t.user('member');
    const path = `/users/${userId}/api-keys`;
    const refused = await t.api('POST', path, { key: moderator.key, body: { device_name: 'x' } });
    expect(refused.status).toBe(403);
    expect((await t.api('POST', path, { body: {} })).status).toBe(401);
    const issued = await t.api('POST', path, { key: admin.key, body: { device_name: 'tablet' } });
    expect(issued.status).toBe(201);
    expect(issued.json.user_id).toBe(userId);
    expect((await t.api('GET', '/keys/validate', { key: issued.json.key })).json.user_id).toBe(userId);
    const unknown = await t.api('POST', '/users/user_0000000000000000/api-keys', {
      key: admin.key,
      body: {},
    });
    expect(unknown.status).toBe(404);
    // Both attempts are in the member's audit log, as a level change would be.
    const audit = await t.api('GET', `/audit?target=${userId}`, { key: admin.key });
    const actions = (audit.json.entries as Array<{ action: string; result: string }>).map(
      (e) => `${e.action}:${e.result}`,
    );
    expect(actions).toEqual(expect.arrayContaining(['issue-key:denied', 'issue-key:ok']));
  });
});
