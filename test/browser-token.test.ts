import { join } from 'node:path';
import { userIdForSubject } from '@scopesync/relay';
import { SignJWT } from 'jose';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BundledPage, serveBundledPage } from './support/bundled-page.ts';
import { CHROMIUM, hasChromium, launchChromium } from './support/chromium.ts';
import { useTestRelay } from './support/start-test-relay.ts';

/*
 * A browser cannot put a header on a WebSocket: in real Chromium, the client signed in with an
 * app token carries it in the subprotocol, the relay answers `scopesync` only, and the user's
 * edit is stored — with no token in any URL the relay logged.
 */

const SECRET = 'the app server signs its tokens with this secret';
const ISSUER = 'https://app.example';
const paths: string[] = [];
const t = useTestRelay({
  auth: { jwt: { secret: SECRET, issuer: ISSUER, audience: 'scopesync' } },
  corsOrigins: ['*'],
  log: (_level, message, context) => {
    if (message === 'http request') paths.push(String(context?.path));
  },
});

let browser: Browser | undefined;
let page: BundledPage | undefined;

beforeAll(async () => {
  if (!hasChromium()) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  page = await serveBundledPage(join(import.meta.dirname, 'browser', 'token-page.ts'));
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await page?.close();
});

it('signs in with a token in the subprotocol from Chromium and syncs', async () => {
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('browser-user')
    .setIssuer(ISSUER)
    .setAudience('scopesync')
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(SECRET));
  const context = await (browser as Browser).newContext();
  const tab = await context.newPage();
  await tab.goto(`${(page as BundledPage).url}?relay=${encodeURIComponent(t.url)}`);
  await tab.waitForFunction(() => 'api' in globalThis);
  type Api = {
    run(token: string, text: string): Promise<{ userId: string; status: string; protocol: string }>;
  };
  const result = await tab.evaluate(
    ([tk]) => (globalThis as unknown as { api: Api }).api.run(tk as string, 'typed in Chromium'),
    [token],
  );
  const userId = userIdForSubject(ISSUER, 'browser-user');
  expect(result).toEqual({ userId, status: 'online', protocol: 'scopesync' });
  const stored = await t.api('GET', `/userdata/${userId}/USER_PUBLIC/browser-token`);
  expect(stored.json.value).toEqual({ text: 'typed in Chromium' });
  const signature = token.split('.')[2] as string;
  expect(paths.length).toBeGreaterThan(0);
  for (const path of paths) expect(path).not.toContain(signature);
  await context.close();
});
