import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BundledPage, serveBundledPage } from './support/bundled-page.ts';
import { CHROMIUM, hasChromium, launchChromium } from './support/chromium.ts';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * y-prosemirror (what TipTap's Collaboration + CollaborationCaret run on) bound to
 * `client.provider()` with no glue, in Chromium through a real relay. It tells my caret from
 * the others' by the doc's clientID: before presence followed the doc, an edit the client had
 * to refuse (and so a rebuilt doc) made the user's own caret show up as someone else's.
 */

let relay: TestRelay;
let bundle: BundledPage;
let browser: Browser;

beforeAll(async () => {
  if (!hasChromium()) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  relay = await startTestRelay({ rateLimit: false });
  bundle = await serveBundledPage(join(import.meta.dirname, 'browser', 'prosemirror-page.ts'));
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await bundle?.close();
  await relay?.close();
});

function poll<T>(read: () => Promise<T> | T) {
  return expect.poll(read, { timeout: 15_000, interval: 100 });
}

async function open(name: string, doc?: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(20_000);
  const query = new URLSearchParams({ relay: relay.url, name, ...(doc ? { doc } : {}) });
  await page.goto(`${bundle.url}?${query}`);
  await page.locator('[data-testid="editor"][data-synced="true"]').waitFor();
  return page;
}

/** The editor's text, without the carets drawn inside it. */
function text(page: Page): Promise<string> {
  return page.locator('.ProseMirror').evaluate((editor) => {
    const copy = editor.cloneNode(true) as HTMLElement;
    copy.querySelectorAll('.ProseMirror-yjs-cursor').forEach((caret) => {
      caret.remove();
    });
    return copy.textContent ?? '';
  });
}

/** The names on the carets a page draws as other people's. */
function carets(page: Page): Promise<string[]> {
  return page.locator('.ProseMirror-yjs-cursor > div').allTextContents();
}

it("a refused edit rebuilds the ProseMirror binding, and my own caret never shows as someone else's", async () => {
  const carol = await open('Carol');
  await carol.locator('.ProseMirror').click();
  await carol.keyboard.type('Carol wrote this');
  const docName = await carol.evaluate(
    () => (globalThis as unknown as { page: { docName: string } }).page.docName,
  );

  // Eve may read Carol's public doc, not write it; her editor was not made read-only.
  const eve = await open('Eve', docName);
  await poll(() => text(eve)).toBe('Carol wrote this');
  await carol.locator('.ProseMirror').click();
  await poll(() => carets(eve)).toEqual(['Carol']);
  await poll(() => carets(carol)).toEqual([]);

  await eve.locator('.ProseMirror').click();
  await poll(() => carets(carol)).toEqual(['Eve']);
  await eve.keyboard.type('!');
  const resets = () =>
    eve.evaluate(() => (globalThis as unknown as { page: { resets: number } }).page.resets);
  await poll(resets).toBeGreaterThan(0);

  // The rebuilt editor shows the confirmed text. Eve clicks into it again: it shows Carol's
  // caret — and not Eve's own.
  await poll(() => text(eve)).toBe('Carol wrote this');
  await eve.locator('.ProseMirror').click();
  await eve.keyboard.press('End');
  await poll(() => carets(eve)).toEqual(['Carol']);
  // Carol sees one Eve, and keeps her text.
  await poll(() => carets(carol)).toEqual(['Eve']);
  expect(await text(carol)).toBe('Carol wrote this');
  // Typing on Carol's side still reaches Eve's rebuilt editor.
  await carol.keyboard.press('End');
  await carol.keyboard.type(', live');
  await poll(() => text(eve)).toBe('Carol wrote this, live');
  expect(await carets(eve)).toEqual(['Carol']);
});
