import { Level, SyncError } from '@scopesync/core';
import { userIdForSubject } from '@scopesync/relay';
import { describe, expect, it } from 'vitest';
import { mustOpen, openSocket } from './support/auth-sockets.ts';
import { useTestRelay } from './support/start-test-relay.ts';

// `auth.verifyToken`: the app checks its own (opaque) session tokens, as with Hocuspocus's
// onAuthenticate; the relay does the rest exactly as for JWTs.

const sessions = new Map<string, { user: string; level: Level | null; expiresAt: number }>();
const t = useTestRelay({
  auth: {
    registration: 'closed',
    verifyToken: async (token) => {
      const session = sessions.get(token);
      if (!session) throw new SyncError('Unauthorized', 'unknown session');
      return {
        userId: userIdForSubject('my-app', session.user),
        level: session.level,
        expiresAt: session.expiresAt,
      };
    },
  },
});

describe('an app-verified session token', () => {
  it('signs in on HTTP and sync; unknown and expired sessions are 401; the level follows the session', async () => {
    sessions.set('sess_live_1', { user: 'ann', level: null, expiresAt: Date.now() + 60_000 });
    sessions.set('sess_old_1', { user: 'ann', level: null, expiresAt: Date.now() - 1 });
    sessions.set('sess_mod_1', { user: 'ann', level: Level.Moderator, expiresAt: Date.now() + 60_000 });
    const userId = userIdForSubject('my-app', 'ann');
    const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
    expect((await t.api('GET', '/keys/validate', bearer('sess_live_1'))).json).toEqual({
      valid: true,
      user_id: userId,
      level: Level.User,
    });
    const unknown = await t.api('GET', '/keys/validate', bearer('sess_forged'));
    expect(unknown.status).toBe(401);
    expect(unknown.json.message).toBe('unknown session');
    expect((await t.api('GET', '/keys/validate', bearer('sess_old_1'))).status).toBe(401);
    const refused = await openSocket(t.wsUrl, '/sync', { subprotocol: 'sess_forged' });
    expect(refused.ok ? 101 : refused.status).toBe(401);

    const mux = await mustOpen(t.wsUrl, '/sync', { subprotocol: 'sess_live_1' });
    mux.send(`USER_PRIVATE/${userId}/notes`, { type: 'subscribe', mode: 'encrypted', sinceSeq: 0 });
    expect(await mux.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });
    mux.ws.close();
    // The app made Ann a moderator: trusted code, so no cap applies.
    expect((await t.api('GET', '/keys/validate', bearer('sess_mod_1'))).json.level).toBe(Level.Moderator);
  });
});
