import { join } from 'node:path';
import { createClient, memoryClientStore } from '@scopesync/client';
import { importRecoveryPhrase } from '@scopesync/crypto';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { cleanUp, filesOf, findMarker, marker, startScannedRelay } from './e2e-encryption-harness.ts';
import { type BundledPage, serveBundledPage } from './support/bundled-page.ts';
import { CHROMIUM, hasChromium, launchChromium } from './support/chromium.ts';

/*
 * The built-in end-to-end encryption in a real browser (Debian's Chromium via playwright-core):
 * the root seed is kept in IndexedDB wrapped under a non-extractable WebCrypto key, a private
 * note never appears in clear in IndexedDB or on the relay, a Node device linked with the
 * recovery phrase reads and answers it, and the browser decrypts everything again after a
 * reload with the relay down.
 */

let browser: Browser | undefined;
let page: BundledPage | undefined;
let pageUrl = '';

beforeAll(async () => {
  if (!hasChromium()) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  page = await serveBundledPage(join(import.meta.dirname, 'e2e-encryption-browser-page.ts'));
  pageUrl = page.url;
  browser = await launchChromium();
});

afterEach(cleanUp);

afterAll(async () => {
  await browser?.close();
  await page?.close();
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
