import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, memoryClientStore } from '@scopesync/client';
import { createRelay, type Relay } from '@scopesync/relay';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type BundledPage, serveBundledPage } from './support/bundled-page.ts';
import { CHROMIUM, hasChromium, launchChromium } from './support/chromium.ts';

/*
 * The client in a real browser (Debian's Chromium via playwright-core): data written while the
 * relay is down survives a page reload (IndexedDB) and reaches the relay when it returns.
 */

let browser: Browser | undefined;
let page: BundledPage | undefined;
let pageUrl = '';
const relays: Relay[] = [];
const dir = mkdtempSync(join(tmpdir(), 'scopesync-browser-'));

beforeAll(async () => {
  if (!hasChromium()) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  page = await serveBundledPage(join(import.meta.dirname, 'browser', 'client-page.ts'));
  pageUrl = page.url;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await page?.close();
  for (const relay of relays) await relay.close();
  rmSync(dir, { recursive: true, force: true });
});

async function startRelay(port: number): Promise<{ relay: Relay; url: string }> {
  const relay = createRelay({ dataDir: join(dir, 'relay'), port, rateLimit: false, log: () => undefined });
  relays.push(relay);
  const { url } = await relay.listen();
  return { relay, url };
}

it('keeps data written while the relay is down across a reload and delivers it when the relay returns', async () => {
  const first = await startRelay(0);
  const port = Number(new URL(first.url).port);
  const context = await (browser as Browser).newContext();
  const page = await context.newPage();
  await page.goto(`${pageUrl}?relay=${encodeURIComponent(first.url)}`);
  await page.waitForFunction(() => 'api' in globalThis);
  type Api = {
    start(): Promise<{ userId: string; text: string; pending: number }>;
    write(t: string): Promise<number>;
    acked(): Promise<string>;
  };
  const started = await page.evaluate(() => (globalThis as unknown as { api: Api }).api.start());
  expect(started.userId).toMatch(/^user_[0-9a-f]{16}$/);
  await page.evaluate(() => (globalThis as unknown as { api: Api }).api.write('online. '));
  expect(await page.evaluate(() => (globalThis as unknown as { api: Api }).api.acked())).toBe('online. ');

  await first.relay.close();
  relays.splice(relays.indexOf(first.relay), 1);
  expect(await page.evaluate(() => (globalThis as unknown as { api: Api }).api.write('offline!'))).toBe(1);

  await page.reload();
  await page.waitForFunction(() => 'api' in globalThis);
  const reloaded = await page.evaluate(() => (globalThis as unknown as { api: Api }).api.start());
  expect(reloaded).toEqual({ userId: started.userId, text: 'online. offline!', pending: 1 });

  const second = await startRelay(port);
  expect(await page.evaluate(() => (globalThis as unknown as { api: Api }).api.acked())).toBe(
    'online. offline!',
  );
  await context.close();

  // What reached the relay, read back by another user's Node client (USER_PUBLIC is public-read).
  const reader = await createClient({
    url: second.url,
    deviceName: 'reader',
    WebSocket,
    store: memoryClientStore(),
  });
  try {
    const doc = reader.doc(`USER_PUBLIC/${started.userId}/browser-notes`);
    await doc.whenSynced;
    expect(doc.doc.getText('t').toString()).toBe('online. offline!');
  } finally {
    await reader.close();
  }
});
