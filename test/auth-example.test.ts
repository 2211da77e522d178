import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runClient } from '../examples/auth-server/client.ts';
import { type AuthServer, DEMO_TOKENS, startAuthServer } from '../examples/auth-server/server.ts';
import { mintToken } from '../examples/auth-server/tokens.ts';
import { mustOpen, openSocket } from './support/auth-sockets.ts';
import { call, enc } from './support/http-client.ts';

// The example of docs/auth.md runs as documented: its app server mints tokens with jose, mounts
// the relay on its own port, and its client signs in and syncs.

let app: AuthServer;
beforeAll(async () => {
  app = await startAuthServer({ port: 0 });
});
afterAll(() => app?.close());

describe('examples/auth-server', () => {
  it('logs users in and the relay accepts the tokens it mints, on HTTP and sync', async () => {
    const wrong = await call(app.url, 'POST', '/login', { body: { username: 'alice', password: 'guess' } });
    expect(wrong.status).toBe(401);
    const login = await call(app.url, 'POST', '/login', {
      body: { username: 'mia', password: 'mia-password' },
    });
    expect(login.status).toBe(200);
    const { token, user_id: userId } = login.json as { token: string; user_id: string };
    const validated = await call(app.relayUrl, 'GET', '/keys/validate', {
      headers: { authorization: `Bearer ${token}` },
    });
    // Mia is a moderator in the app: the relay follows the token's level claim.
    expect(validated.json).toEqual({ valid: true, user_id: userId, level: 5 });
    const wsBase = app.relayUrl.replace(/^http/, 'ws');
    const mux = await mustOpen(wsBase, '/sync', { subprotocol: token });
    mux.send(`USER_PRIVATE/${userId}/notes`, { type: 'subscribe', mode: 'encrypted', sinceSeq: 0 });
    expect(await mux.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });
    mux.ws.close();
    // Registration is closed: nobody becomes a user without the app.
    expect((await call(app.relayUrl, 'POST', '/keys', { body: { device_name: 'x' } })).status).toBe(403);
  });

  it('refuses tokens minted with another secret or for another audience', async () => {
    for (const tokens of [
      { ...DEMO_TOKENS, secret: 'somebody else’s secret, long enough to sign with' },
      { ...DEMO_TOKENS, audience: 'another-service' },
    ]) {
      const { token } = await mintToken(tokens, { subject: 'alice' });
      const answer = await call(app.relayUrl, 'GET', '/keys/validate', {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(answer.status).toBe(401);
      const opened = await openSocket(app.relayUrl.replace(/^http/, 'ws'), `/sync/${enc('PUBLIC_RW/_/x')}`, {
        subprotocol: token,
      });
      expect(opened.ok ? 101 : opened.status).toBe(401);
    }
  });

  it('its client signs in through the app and syncs a profile the relay stores', async () => {
    const { userId, profile } = await runClient(app.url, 'alice', 'alice-password');
    expect(profile).toEqual({ name: 'alice' });
    expect((await call(app.relayUrl, 'GET', `/userdata/${userId}/USER_PUBLIC/profile`)).json.owner).toBe(
      userId,
    );
    await expect(runClient(app.url, 'alice', 'wrong')).rejects.toThrow(/did not confirm the user/);
  });
});
