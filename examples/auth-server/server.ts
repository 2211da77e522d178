// A tiny app server with its own login, minting tokens for the scopesync relay it mounts.
//
//   npx tsx --conditions=source examples/auth-server/server.ts      (from the repo root)
//
// POST /login {"username", "password"} answers {token, user_id, expires_at}; the relay answers
// under /scopesync on the same port and accepts only these tokens (registration is closed).
// Read docs/auth.md for what each piece does.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { createRelay, type Relay, userIdForSubject } from '@scopesync/relay';
import { mintToken, type TokenConfig } from './tokens.ts';

/** The demo's users: in a real app, your user table and password hashes. */
const USERS: Readonly<Record<string, { readonly password: string; readonly level: number }>> = {
  alice: { password: 'alice-password', level: 1 },
  bob: { password: 'bob-password', level: 1 },
  mia: { password: 'mia-password', level: 5 },
};

/** The demo's token settings; the relay below is configured with the same ones. */
export const DEMO_TOKENS: TokenConfig = {
  secret: 'demo secret: give your own, from the environment, in a real deployment',
  issuer: 'https://auth-server.example',
  audience: 'scopesync',
  lifetimeSeconds: 15 * 60,
};

/** Where the relay is mounted on the app's server. */
export const RELAY_PATH = '/scopesync';

/** A running app server. */
export interface AuthServer {
  /** `http://host:port` of the app. */
  readonly url: string;
  /** The relay's base URL: what `createClient({ url })` gets. */
  readonly relayUrl: string;
  readonly relay: Relay;
  close(): Promise<void>;
}

/** Starts the app server with the relay mounted under {@link RELAY_PATH}. */
export async function startAuthServer(
  options: { port?: number; host?: string; tokens?: TokenConfig; dataDir?: string } = {},
): Promise<AuthServer> {
  const tokens = options.tokens ?? DEMO_TOKENS;
  const relay = createRelay({
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    auth: {
      // Users come from this app: nobody registers with the relay on their own.
      registration: 'closed',
      jwt: { secret: tokens.secret, issuer: tokens.issuer, audience: tokens.audience, maxLevel: 5 },
    },
  });
  const server = createServer((req, res) => {
    route(req, res, tokens).catch((error: unknown) => {
      console.error('auth-server: request failed', error);
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
    });
  });
  await relay.attach(server, { path: RELAY_PATH });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(options.port ?? 3000, host, resolve));
  const url = `http://${host}:${(server.address() as AddressInfo).port}`;
  return {
    url,
    relayUrl: `${url}${RELAY_PATH}`,
    relay,
    close: async () => {
      await relay.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function route(req: IncomingMessage, res: ServerResponse, tokens: TokenConfig): Promise<void> {
  if (req.method === 'POST' && req.url === '/login') {
    const body = await readJson(req);
    const user = typeof body.username === 'string' ? USERS[body.username] : undefined;
    if (!user || typeof body.password !== 'string' || !samePassword(body.password, user.password)) {
      send(res, 401, { error: 'wrong username or password' });
      return;
    }
    const username = body.username as string;
    const { token, expiresAt } = await mintToken(tokens, { subject: username, level: user.level });
    // The relay's user id for this user, so the app can show it or share with it.
    send(res, 200, { token, user_id: userIdForSubject(tokens.issuer, username), expires_at: expiresAt });
    return;
  }
  if (req.method === 'GET' && req.url === '/') {
    send(res, 200, { app: 'auth-server example', login: 'POST /login', relay: RELAY_PATH });
    return;
  }
  send(res, 404, { error: 'not found' });
}

function samePassword(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 10_000) throw new Error('body too large');
  }
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { PORT, APP_TOKEN_SECRET } = process.env;
  const app = await startAuthServer({
    port: Number(PORT ?? 3000),
    tokens: APP_TOKEN_SECRET === undefined ? DEMO_TOKENS : { ...DEMO_TOKENS, secret: APP_TOKEN_SECRET },
  });
  console.log(`app server on ${app.url}; relay mounted at ${app.relayUrl}`);
  console.log(
    `try: npx tsx --conditions=source examples/auth-server/client.ts ${app.url} alice alice-password`,
  );
  const stop = () => void app.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
