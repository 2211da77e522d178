import { createClient, memoryClientStore, type SyncClient } from '@scopesync/client';
import { userIdForSubject } from '@scopesync/relay';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { useTestRelay } from './support/start-test-relay.ts';

// @scopesync/client signed in with the app's token (docs/auth.md): the token goes in the
// Authorization header and the WebSocket subprotocol, never in a URL; a token function is asked
// again when the relay closes the socket because the token expired, and the client carries on.

const SECRET = 'the app server signs its tokens with this secret';
const ISSUER = 'https://app.example';

const urls: string[] = [];
const t = useTestRelay({
  auth: { jwt: { secret: SECRET, issuer: ISSUER, audience: 'scopesync', clockToleranceSeconds: 0 } },
  log: (_level, message, context) => {
    if (message === 'http request') urls.push(String(context?.path));
  },
});

let clients: SyncClient[] = [];
afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
});

function mint(subject: string, seconds: number): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(subject)
    .setIssuer(ISSUER)
    .setAudience('scopesync')
    .setExpirationTime(Math.floor(Date.now() / 1000) + seconds)
    .sign(new TextEncoder().encode(SECRET));
}

/** Captures the subprotocols and URLs the client opens sockets with. */
function recordingWebSocket(seen: Array<{ url: string; protocols: string[] | undefined }>) {
  return class extends WebSocket {
    constructor(url: string, protocols?: string[]) {
      super(url, protocols);
      seen.push({ url, protocols });
    }
  };
}

describe('a client signed in with a token', () => {
  it('is the token’s user, syncs, and never puts the token in a URL', async () => {
    const seen: Array<{ url: string; protocols: string[] | undefined }> = [];
    const token = await mint('alice', 600);
    const client = await createClient({
      url: t.url,
      token,
      WebSocket: recordingWebSocket(seen),
      store: memoryClientStore(),
    });
    clients.push(client);
    expect(client.userId).toBe(userIdForSubject(ISSUER, 'alice'));
    await client.userData.set('USER_PUBLIC', client.userId as string, 'profile', { name: 'Alice' });
    const handle = client.doc(`USER_PUBLIC/${client.userId}/profile`);
    await handle.whenSynced;
    const stored = await t.api('GET', `/userdata/${client.userId}/USER_PUBLIC/profile`);
    expect(stored.json.value).toEqual({ name: 'Alice' });
    expect(seen[0]?.url).toBe(`${t.wsUrl}/sync`);
    expect(seen[0]?.protocols).toEqual(['scopesync', `bearer.${token}`]);
    for (const path of urls) expect(path).not.toContain(token.split('.')[2]);
    handle.release();
  });

  it('asks the token function again when its token expires, reconnects and keeps syncing', async () => {
    let calls = 0;
    const client = await createClient({
      url: t.url,
      // Each token lives 2 s: the relay closes the socket with 4401 when it expires.
      token: async () => {
        calls++;
        return mint('bob', 2);
      },
      WebSocket,
      store: memoryClientStore(),
      backoff: { initialMs: 20, maxMs: 200 },
    });
    clients.push(client);
    const userId = userIdForSubject(ISSUER, 'bob');
    expect(client.userId).toBe(userId);
    const authErrors: unknown[] = [];
    client.on('auth-error', (error) => authErrors.push(error));
    const statuses: string[] = [];
    client.on('status', (status) => statuses.push(status));
    const handle = client.doc(`USER_PUBLIC/${userId}/notes`);
    await handle.whenSynced;
    const before = calls;
    // The relay closes the socket when the token expires (4401); the client fetches a fresh
    // token and is back online without a word to the app.
    const reconnected = (): boolean => {
      const online = statuses.indexOf('online');
      const dropped = statuses.indexOf('connecting', online);
      return online >= 0 && dropped > online && statuses.indexOf('online', dropped) > dropped;
    };
    await vi.waitFor(() => expect(reconnected(), statuses.join(' → ')).toBe(true), {
      timeout: 8000,
      interval: 50,
    });
    expect(calls).toBeGreaterThan(before);
    await handle.transact((doc) => doc.getMap('data').set('after', 'expiry'));
    await vi.waitFor(
      async () => {
        const stored = await t.api('GET', `/userdata/${userId}/USER_PUBLIC/notes`);
        expect(stored.json?.value).toMatchObject({ after: 'expiry' });
      },
      { timeout: 8000, interval: 100 },
    );
    expect(authErrors).toEqual([]);
    handle.release();
  });
});
