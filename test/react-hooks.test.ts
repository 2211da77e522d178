import { join } from 'node:path';
import { createClient, type SyncClient } from '@scopesync/client';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type BundledPage, serveBundledPage } from './support/bundled-page.ts';
import { CHROMIUM, hasChromium, launchChromium } from './support/chromium.ts';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * @scopesync/react in real Chromium: two people (two browser contexts, each its own IndexedDB)
 * on a React page in StrictMode, and a third user as a Node client, through a real relay. The
 * pad is CodeMirror 6 bound with y-codemirror.next to useDoc's provider.
 */

function poll<T>(read: () => Promise<T> | T) {
  return expect.poll(read, { timeout: 15_000, interval: 100 });
}

function byTestId(page: Page | Locator, id: string): Locator {
  return page.locator(`[data-testid="${id}"]`);
}

describe('@scopesync/react in a browser', () => {
  let relay: TestRelay;
  let bundle: BundledPage;
  let browser: Browser;
  let carol: SyncClient;
  let essay: string;
  let ada: Page;
  let bob: Page;

  const open = async (name: string, extra: Record<string, string> = {}): Promise<Page> => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    const query = new URLSearchParams({ relay: relay.url, name, essay, ...extra });
    await page.goto(`${bundle.url}?${query}`);
    await page.locator('[data-testid="status"]:text-is("online")').waitFor();
    return page;
  };

  beforeAll(async () => {
    if (!hasChromium()) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    relay = await startTestRelay({ rateLimit: false });
    bundle = await serveBundledPage(join(import.meta.dirname, 'browser', 'react-page.ts'));
    browser = await launchChromium();
    carol = await createClient({ url: relay.url, deviceName: 'carol', WebSocket });
    essay = `USER_PUBLIC/${carol.userId}/essay`;
    const handle = carol.doc(essay);
    await handle.transact((doc) => doc.getText('t').insert(0, 'Carol wrote this'));
    await handle.whenAcked();
    await handle.release();
    ada = await open('Ada');
    bob = await open('Bob');
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await bundle?.close();
    await carol?.close();
    await relay?.close();
  });

  it('two people type into the same CodeMirror pad at once and see the merged text and each other', async () => {
    await poll(() => byTestId(ada, 'pad').getAttribute('data-synced')).toBe('true');
    await poll(() => byTestId(bob, 'pad').getAttribute('data-synced')).toBe('true');
    await ada.locator('[data-testid="pad"] .cm-content').click();
    await bob.locator('[data-testid="pad"] .cm-content').click();
    await Promise.all([ada.keyboard.type('Ada was here. '), bob.keyboard.type('Bob too. ')]);

    // The editors show what the doc holds (remote carets are widgets inside the text).
    const editorText = (page: Page) => page.locator('[data-testid="pad"] .cm-content').textContent();
    const docText = (page: Page) => byTestId(page, 'pad-text').textContent();
    await poll(() => docText(ada)).toMatch(/^(Ada was here\. Bob too\. |Bob too\. Ada was here\. )$/);
    const merged = await docText(ada);
    await poll(() => docText(bob)).toBe(merged);
    for (const page of [ada, bob]) {
      await poll(() => editorText(page)).toContain('Ada was here.');
      await poll(() => editorText(page)).toContain('Bob too.');
    }

    // Presence: each lists the other (never themselves), and draws the other's caret.
    await poll(() => byTestId(ada, 'people').textContent()).toBe('Bob');
    await poll(() => byTestId(bob, 'people').textContent()).toBe('Ada');
    await poll(() => ada.locator('[data-testid="pad"] .cm-ySelectionCaret').count()).toBe(1);
    await poll(() => bob.locator('[data-testid="pad"] .cm-ySelectionCaret').count()).toBe(1);
    expect(await ada.locator('.cm-ySelectionInfo').textContent()).toBe('Bob');
  });

  it('useUserData shows another client’s write live, and a write from the page reaches it', async () => {
    await carol.userData.set('PUBLIC_RW', '_', 'settings', { theme: 'dark' });
    await poll(() => byTestId(ada, 'setting').textContent()).toBe('dark');
    await poll(() => byTestId(bob, 'setting').textContent()).toBe('dark');

    await byTestId(ada, 'set-light').click();
    await poll(() => byTestId(bob, 'setting').textContent()).toBe('light');
    await poll(() => byTestId(ada, 'setting').getAttribute('data-pending')).toBe('false');
    await poll(async () => (await carol.userData.get('PUBLIC_RW', '_', 'settings'))?.theme).toBe('light');
  });

  it('shows a doc I may only read read-only: typing changes nothing', async () => {
    await poll(() => byTestId(ada, 'essay-text').textContent()).toBe('Carol wrote this');
    expect(await byTestId(ada, 'essay').getAttribute('data-readonly')).toBe('true');
    const editor = ada.locator('[data-testid="essay"] .cm-content');
    expect(await editor.getAttribute('contenteditable')).toBe('false');
    await editor.click();
    await ada.keyboard.type('hijack');
    expect(await editor.textContent()).toBe('Carol wrote this');
    expect(await byTestId(ada, 'essay-text').textContent()).toBe('Carol wrote this');
  });

  it('unmounting the pad gives the doc back: the others see me leave, and come back on remount', async () => {
    await byTestId(bob, 'toggle-pad').click();
    await poll(() => byTestId(ada, 'people').textContent()).toBe('');
    await poll(() => ada.locator('[data-testid="pad"] .cm-ySelectionCaret').count()).toBe(0);

    await byTestId(bob, 'toggle-pad').click();
    await poll(() => byTestId(bob, 'pad').getAttribute('data-synced')).toBe('true');
    await poll(() => byTestId(ada, 'people').textContent()).toBe('Bob');
    // The remounted editor still syncs both ways.
    await bob.locator('[data-testid="pad"] .cm-content').click();
    await bob.keyboard.press('Control+End');
    await bob.keyboard.type(' Back again.');
    await poll(() => byTestId(ada, 'pad-text').textContent()).toMatch(/Back again\.$/);
  });

  it('an editor that let me type into a doc I may only read is rebuilt on the confirmed doc, my presence following it', async () => {
    const eve = await open('Eve', { unguarded: '1' });
    await poll(() => byTestId(eve, 'essay-text').textContent()).toBe('Carol wrote this');
    const before = await byTestId(eve, 'essay').getAttribute('data-client-id');
    const watcher = carol.provider(essay);
    try {
      await poll(() => [...watcher.awareness.getStates().keys()]).toContain(Number(before));
      await eve.locator('[data-testid="essay"] .cm-content').click();
      await eve.keyboard.type('!');
      // Refused (Forbidden), the doc rebuilt from what the relay confirmed, the editor on it.
      await poll(() => byTestId(eve, 'essay').getAttribute('data-error')).toBe('Forbidden');
      await poll(() => byTestId(eve, 'essay').getAttribute('data-client-id')).not.toBe(before);
      await poll(() => eve.locator('[data-testid="essay"] .cm-content').textContent()).toBe(
        'Carol wrote this',
      );
      expect(await byTestId(eve, 'essay-text').textContent()).toBe('Carol wrote this');
      // Carol sees Eve under the new doc's client id only: no ghost left behind.
      const after = Number(await byTestId(eve, 'essay').getAttribute('data-client-id'));
      const seenByCarol = () => [...watcher.awareness.getStates().keys()];
      await poll(() => seenByCarol()).toContain(after);
      await poll(() => seenByCarol()).not.toContain(Number(before));
      // The rebuilt editor still shows Carol's edits live.
      watcher.doc.getText('t').insert(0, '> ');
      await poll(() => eve.locator('[data-testid="essay"] .cm-content').textContent()).toBe(
        '> Carol wrote this',
      );
    } finally {
      await watcher.destroy();
      await eve.context().close();
    }
  });
});
