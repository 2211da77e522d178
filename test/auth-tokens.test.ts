import { Level } from '@scopesync/core';
import { userIdForSubject } from '@scopesync/relay';
import { SignJWT } from 'jose';
import { afterAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { mustOpen, openSocket, type Transport } from './support/auth-sockets.ts';
import { enc } from './support/http-client.ts';
import { useTestRelay } from './support/start-test-relay.ts';

// The relay accepts tokens minted by the app's own auth server (docs/auth.md): on HTTP and on
// both sync endpoints, in a header, the subprotocol or the query; it refuses a token from
// another issuer, for another audience, with a bad signature or expired, and closes a socket
// whose token expires while it is open with 4401. What it logs never holds a token.

const SECRET = 'a shared secret of the app server, 32+ bytes long';
const ISSUER = 'https://app.example';
const AUDIENCE = 'scopesync';

const logLines: string[] = [];
const t = useTestRelay({
  auth: {
    jwt: {
      secret: SECRET,
      issuer: ISSUER,
      audience: AUDIENCE,
      clockToleranceSeconds: 0,
      maxLevel: Level.Moderator,
      roleLevels: { moderator: Level.Moderator },
    },
  },
  log: (level, message, context) => {
    logLines.push(
      JSON.stringify({ level, message, ...context }, (_k, v) => (v instanceof Error ? v.message : v)),
    );
  },
});

interface MintOptions {
  readonly issuer?: string;
  readonly audience?: string;
  readonly secret?: string;
  /** Seconds from now; negative for an expired token. */
  readonly expiresIn?: number;
  readonly claims?: Record<string, unknown>;
}

const minted: string[] = [];

/** A token as the app server would mint it (HS256). */
async function mint(subject: string, options: MintOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ ...options.claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(subject)
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt(now - 60)
    .setExpirationTime(now + (options.expiresIn ?? 600))
    .sign(new TextEncoder().encode(options.secret ?? SECRET));
  minted.push(token);
  return token;
}

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

describe('a valid token', () => {
  it('signs in over HTTP as the user its subject names, created on first use', async () => {
    const token = await mint('alice@app');
    const userId = userIdForSubject(ISSUER, 'alice@app');
    const validated = await t.api('GET', '/keys/validate', bearer(token));
    expect(validated.status).toBe(200);
    expect(validated.json).toEqual({ valid: true, user_id: userId, level: Level.User });
    const written = await t.api('POST', `/userdata/${userId}/USER_PUBLIC/profile`, {
      ...bearer(token),
      body: { value: { name: 'Alice' } },
    });
    expect(written.status).toBe(200);
    expect(written.json.owner).toBe(userId);
    // Another token of the same subject is the same user.
    const again = await t.api(
      'GET',
      `/userdata/${userId}/USER_PRIVATE/nothing`,
      bearer(await mint('alice@app')),
    );
    expect(again.status).toBe(404);
  });

  it.each<[string, (token: string) => Transport]>([
    ['the subprotocol', (token) => ({ subprotocol: token })],
    ['an Authorization header', (token) => ({ header: token })],
    ['the query string', (token) => ({ query: token })],
  ])('opens both sync endpoints with the token in %s', async (_how, transport) => {
    const token = await mint('bob@app');
    const userId = userIdForSubject(ISSUER, 'bob@app');
    const blob = `bob-notes-${Math.random().toString(36).slice(2)}`;
    expect((await t.api('PUT', `/blob/${blob}`, { ...bearer(token), body: 'notes' })).status).toBe(200);

    const mux = await mustOpen(t.wsUrl, '/sync', transport(token));
    // The relay answers only the non-secret protocol.
    expect(mux.ws.protocol).toBe('subprotocol' in transport(token) ? 'scopesync' : '');
    const doc = `USER_PUBLIC/${userId}/profile`;
    mux.send(doc, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    expect(await mux.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });
    mux.send(`blob/${blob}`, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    expect(await mux.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });

    // A blob only its owner may read: the single-document upgrade succeeds with the token only.
    const single = await mustOpen(t.wsUrl, `/sync/${enc(`blob/${blob}`)}`, transport(token));
    const guest = await openSocket(t.wsUrl, `/sync/${enc(`blob/${blob}`)}`, { none: true });
    expect([401, 403]).toContain(guest.ok ? 101 : guest.status);
    mux.ws.close();
    single.ws.close();
  });
});

describe('a stock y-websocket provider', () => {
  it.each<[string, (token: string) => { protocols?: string[]; params?: Record<string, string> }]>([
    ['protocols', (token) => ({ protocols: ['scopesync', `bearer.${token}`] })],
    ['params', (token) => ({ params: { key: token } })],
  ])('writes as the token’s user with the token in its %s option', async (_how, credential) => {
    const token = await mint('frank@app');
    const userId = userIdForSubject(ISSUER, 'frank@app');
    const name = `USER_PUBLIC/${userId}/wall-${Object.keys(credential(token))[0]}`;
    const doc = new Y.Doc();
    const provider = new WebsocketProvider(`${t.wsUrl}/sync`, name, doc, {
      WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
      disableBc: true,
      ...credential(token),
    });
    try {
      doc.getMap('data').set('from', 'y-websocket');
      // Only the owner may write USER_PUBLIC: the write arriving proves the token signed it in.
      await vi.waitFor(
        async () => {
          const stored = await t.api('GET', `/userdata/${userId}/USER_PUBLIC/${name.split('/')[2]}`);
          expect(stored.json?.value).toEqual({ from: 'y-websocket' });
        },
        { timeout: 5000, interval: 100 },
      );
    } finally {
      provider.destroy();
      doc.destroy();
    }
  });
});

describe('a token the relay must refuse', () => {
  const cases: Array<[string, () => Promise<string>, string]> = [
    [
      'from another issuer',
      () => mint('mallory', { issuer: 'https://evil.example' }),
      'iss claim check failed',
    ],
    [
      'for another audience',
      () => mint('mallory', { audience: 'another-service' }),
      'aud claim check failed',
    ],
    [
      'signed with another secret',
      () => mint('mallory', { secret: 'not the app server secret, but long enough' }),
      'bad signature',
    ],
    ['expired', () => mint('mallory', { expiresIn: -10 }), 'expired'],
  ];

  it.each(cases)('%s: 401 over HTTP and at both upgrades', async (_what, make, reason) => {
    const token = await make();
    const answer = await t.api('GET', '/keys/validate', bearer(token));
    expect(answer.status).toBe(401);
    expect(answer.json.message).toContain(reason);
    expect((await t.api('GET', '/audit', bearer(token))).status).toBe(401);
    for (const transport of [{ subprotocol: token }, { header: token }, { query: token }] as Transport[]) {
      for (const path of ['/sync', `/sync/${enc('PUBLIC_RW/_/board')}`]) {
        const opened = await openSocket(t.wsUrl, path, transport);
        expect(opened.ok ? 101 : opened.status, `${path} ${Object.keys(transport)[0]}`).toBe(401);
      }
    }
  });
});

describe('a token that expires while its sockets are open', () => {
  it('closes them with 4401, on both endpoints, and no frame passes after', async () => {
    const token = await mint('carol@app', { expiresIn: 2 });
    const userId = userIdForSubject(ISSUER, 'carol@app');
    const mux = await mustOpen(t.wsUrl, '/sync', { subprotocol: token });
    mux.send(`USER_PUBLIC/${userId}/profile`, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    expect(await mux.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });
    const single = await mustOpen(t.wsUrl, `/sync/${enc(`USER_PUBLIC/${userId}/profile`)}`, {
      header: token,
    });
    const [muxClosed, singleClosed] = await Promise.all([mux.closed, single.closed]);
    expect(muxClosed).toEqual({ code: 4401, reason: 'token expired' });
    expect(singleClosed).toEqual({ code: 4401, reason: 'token expired' });
    // And the same token is refused from now on.
    expect((await t.api('GET', '/keys/validate', bearer(token))).status).toBe(401);
  });
});

describe('levels from the token', () => {
  it('follow the claims, capped by the operator, and re-decide open subscriptions', async () => {
    const userId = userIdForSubject(ISSUER, 'dave@app');
    const owner = userIdForSubject(ISSUER, 'erin@app');
    const erin = await mint('erin@app');
    expect(
      (
        await t.api('POST', `/userdata/${owner}/USER_PUBLIC/post`, {
          ...bearer(erin),
          body: { value: { n: 1 } },
        })
      ).status,
    ).toBe(200);

    // A moderator by role (the level claim asks for admin: capped at the relay's maxLevel).
    const asModerator = await mint('dave@app', { claims: { roles: ['moderator'], level: Level.Admin } });
    const validated = await t.api('GET', '/keys/validate', bearer(asModerator));
    expect(validated.json).toMatchObject({ user_id: userId, level: Level.Moderator });
    const mux = await mustOpen(t.wsUrl, '/sync', { subprotocol: asModerator });
    const doc = `USER_PUBLIC/${owner}/post`;
    mux.send(doc, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    // Moderators may edit other users' USER_PUBLIC objects.
    expect(await mux.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });

    // The app demotes Dave: his next token says level 1, and the open socket loses write at once.
    const demoted = await mint('dave@app', { claims: { level: Level.User } });
    expect((await t.api('GET', '/keys/validate', bearer(demoted))).json.level).toBe(Level.User);
    expect(await mux.next((m) => m.type === 'permission')).toMatchObject({ access: 'read' });
    mux.ws.close();
  });
});

describe('logs', () => {
  afterAll(() => {
    // Runs after every test above: nothing the relay logged holds a token or a part of one.
    for (const token of minted) {
      const signature = token.split('.')[2] as string;
      for (const line of logLines) expect(line.includes(signature), line).toBe(false);
    }
  });

  it('capture the requests and sockets of this file', () => {
    expect(logLines.some((line) => line.includes('"message":"http request"'))).toBe(true);
    expect(logLines.some((line) => line.includes('"message":"socket opened"'))).toBe(true);
  });
});
