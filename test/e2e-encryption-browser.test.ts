import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createClient, memoryClientStore } from '@scopesync/client';
import { importRecoveryPhrase } from '@scopesync/crypto';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { cleanUp, filesOf, findMarker, marker, startScannedRelay } from './e2e-encryption-harness.ts';

/*
 * The built-in end-to-end encryption in a real browser (Debian's Chromium via playwright-core):
 * the root seed is kept in IndexedDB wrapped under a non-extractable WebCrypto key, a private
 * note never appears in clear in IndexedDB or on the relay, a Node device linked with the
 * recovery phrase reads and answers it, and the browser decrypts everything again after a
 * reload with the relay down.
 */

const CHROMIUM = '/usr/bin/chromium';
let browser: Browser | undefined;
let pageServer: Server | undefined;
let pageUrl = '';

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  const bundle = await build({
    entryPoints: [join(import.meta.dirname, 'e2e-encryption-browser-page.ts')],
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

afterEach(cleanUp);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (pageServer ? pageServer.close(() => resolve()) : resolve()));
});

type Api = {
  start(): Promise<{ userId: string | undefined; seedLocation: string; text: string }>;
  write(text: string): Promise<void>;
  phrase(): Promise<string>;
  text(): string;
  scan(needles: number[][]): Promise<{ found: boolean[]; deviceKey: string }>;
};
/** The page's global, where e2e-encryption-browser-page.ts puts its api. */
type PageGlobal = { api: Api };

it('keeps the seed wrapped by a non-extractable key in IndexedDB; private notes sync in ciphertext only', async () => {
  const relay = await startScannedRelay();
  const context = await (browser as Browser).newContext();
  const page = await context.newPage();
  await page.goto(`${pageUrl}?relay=${encodeURIComponent(relay.url)}`);
  await page.waitForFunction(() => 'api' in globalThis);

  const started = await page.evaluate(() => (globalThis as unknown as PageGlobal).api.start());
  expect(started.seedLocation).toBe('store');
  const fromBrowser = marker('browser');
  await page.evaluate((text) => (globalThis as unknown as PageGlobal).api.write(text), fromBrowser);
  const phrase = await page.evaluate(() => (globalThis as unknown as PageGlobal).api.phrase());

  // A Node device of the same user, linked with the recovery phrase, reads and answers.
  const fromNode = marker('node');
  const phone = await createClient({
    url: relay.url,
    deviceName: 'phone',
    recoveryPhrase: phrase,
    WebSocket,
    store: memoryClientStore(),
  });
  try {
    expect(phone.userId).toBe(started.userId);
    const notes = phone.doc(`USER_PRIVATE/${started.userId}/notes`);
    await notes.whenSynced;
    expect(notes.doc.getText('t').toString()).toBe(fromBrowser);
    await notes.transact((d) => d.getText('t').insert(d.getText('t').length, fromNode));
    await notes.whenAcked();
  } finally {
    await phone.close();
  }
  await vi.waitFor(async () =>
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobal).api.text())).toBe(
      fromBrowser + fromNode,
    ),
  );

  // IndexedDB: no marker, no seed; the device key is a non-extractable CryptoKey.
  const seed = await importRecoveryPhrase(phrase);
  const enc = new TextEncoder();
  const scan = await page.evaluate(
    (needles) => (globalThis as unknown as PageGlobal).api.scan(needles),
    [Array.from(enc.encode(fromBrowser)), Array.from(enc.encode(fromNode)), Array.from(seed)],
  );
  expect(scan).toEqual({ found: [false, false, false], deviceKey: 'CryptoKey AES-GCM extractable=false' });
  // And a scan that can find things does find them: the user id is stored in clear.
  const control = await page.evaluate(
    (needles) => (globalThis as unknown as PageGlobal).api.scan(needles),
    [Array.from(enc.encode(started.userId as string))],
  );
  expect(control.found).toEqual([true]);

  // The relay is gone; after a reload the browser unwraps its seed and keys and decrypts again.
  await relay.relay.close();
  await page.reload();
  await page.waitForFunction(() => 'api' in globalThis);
  const offline = await page.evaluate(() => (globalThis as unknown as PageGlobal).api.start());
  expect(offline).toMatchObject({ userId: started.userId, text: fromBrowser + fromNode });
  await context.close();

  const sources = new Map<string, Uint8Array[]>();
  for (const [path, bytes] of await filesOf(relay.dataDir)) sources.set(path, [bytes]);
  sources.set('relay log', [Buffer.from(relay.logs.join('\n'))]);
  expect(findMarker(fromBrowser, sources)).toEqual([]);
  expect(findMarker(fromNode, sources)).toEqual([]);
});
