import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, memoryClientStore } from '@scopesync/client';
import { createRelay, type Relay } from '@scopesync/relay';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type BundledPage, serveBundledPage } from './support/bundled-page.ts';
import { CHROMIUM, hasChromium, launchChromium } from './support/chromium.ts';

/*
 * Two tabs of one real Chromium profile, first launched while the relay is down: the app
 * starts in both, each tab sees the other's typing at once (BroadcastChannel, real
 * IndexedDB), and when the relay appears the device registers under the id it showed all along
 * and the relay gets everything both tabs wrote.
 */

let browser: Browser | undefined;
let served: BundledPage | undefined;
const relays: Relay[] = [];
const dir = mkdtempSync(join(tmpdir(), 'scopesync-browser-tabs-'));

beforeAll(async () => {
  if (!hasChromium()) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  served = await serveBundledPage(join(import.meta.dirname, 'browser', 'client-page.ts'));
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await served?.close();
  for (const relay of relays) await relay.close();
  rmSync(dir, { recursive: true, force: true });
});

type Api = {
  start(): Promise<{ userId: string; text: string; pending: number }>;
  write(t: string): Promise<number>;
  acked(): Promise<string>;
  text(): string;
};
const call = <T>(page: Page, fn: (api: Api) => T | Promise<T>): Promise<T> =>
  page.evaluate(`(${fn.toString()})(globalThis.api)`) as Promise<T>;

async function startRelay(port: number): Promise<{ relay: Relay; url: string }> {
  const relay = createRelay({ dataDir: join(dir, 'relay'), port, rateLimit: false, log: () => undefined });
  relays.push(relay);
  const { url } = await relay.listen();
  return { relay, url };
}

it('two tabs launched with the relay down see each other’s edits, then sync it all under the same id', async () => {
  // A port nobody listens on: a relay started and closed at once gives its port back.
  const probe = await startRelay(0);
  const port = Number(new URL(probe.url).port);
  await probe.relay.close();
  relays.splice(relays.indexOf(probe.relay), 1);

  const context = await (browser as Browser).newContext();
  const open = async (): Promise<Page> => {
    const page = await context.newPage();
    await page.goto(`${served?.url}?relay=${encodeURIComponent(probe.url)}`);
    await page.waitForFunction(() => 'api' in globalThis);
    return page;
  };
  const tabA = await open();
  const a = await call(tabA, (api) => api.start());
  expect(a.userId).toMatch(/^user_[0-9a-f]{16}$/);
  const tabB = await open();
  const b = await call(tabB, (api) => api.start());
  expect(b.userId).toBe(a.userId);

  await call(tabA, (api) => api.write('typed in A. '));
  await tabB.waitForFunction(() => (globalThis as unknown as { api: Api }).api.text() === 'typed in A. ');
  await call(tabB, (api) => api.write('typed in B.'));
  await tabA.waitForFunction(
    () => (globalThis as unknown as { api: Api }).api.text() === 'typed in A. typed in B.',
  );

  const { url } = await startRelay(port);
  expect(await call(tabA, (api) => api.acked())).toBe('typed in A. typed in B.');
  expect(await call(tabB, (api) => api.acked())).toBe('typed in A. typed in B.');
  await context.close();

  const reader = await createClient({ url, deviceName: 'reader', WebSocket, store: memoryClientStore() });
  try {
    const doc = reader.doc(`USER_PUBLIC/${a.userId}/browser-notes`);
    await doc.whenSynced;
    expect(doc.doc.getText('t').toString()).toBe('typed in A. typed in B.');
  } finally {
    await reader.close();
  }
});
