import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, memoryClientStore } from '@scopesync/client';
import { createRelay, type Relay } from '@scopesync/relay';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';

/*
 * The client in a real browser (Debian's Chromium via playwright-core): data written while the
 * relay is down survives a page reload (IndexedDB) and reaches the relay when it returns.
 */

const CHROMIUM = '/usr/bin/chromium';
let browser: Browser | undefined;
let pageServer: Server | undefined;
let pageUrl = '';
const relays: Relay[] = [];
const dir = mkdtempSync(join(tmpdir(), 'scopesync-browser-'));

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  const bundle = await build({
    entryPoints: [join(import.meta.dirname, 'browser', 'client-page.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['source'],
    write: false,
    logLevel: 'silent',
  });
  const script = bundle.outputFiles[0]?.text ?? '';
  const html =
    '<!doctype html><meta charset="utf-8"><title>scopesync</title><script type="module" src="/client.js"></script>';
  pageServer = createServer((req, res) => {
    const isScript = req.url?.startsWith('/client.js') === true;
    res.writeHead(200, {
      'content-type': isScript ? 'text/javascript' : 'text/html',
      'cache-control': 'no-store',
    });
    res.end(isScript ? script : html);
  });
  await new Promise<void>((resolve) => pageServer?.listen(0, '127.0.0.1', resolve));
  pageUrl = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}/`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (pageServer ? pageServer.close(() => resolve()) : resolve()));
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
