import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from '@scopesync/core';
import { DOCS_DB_FILE } from '@scopesync/relay';
import { SqliteDocStore } from '@scopesync/store-sqlite';
import { buildWebApp } from '@scopesync/web/build';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, hasChromium, launchChromium } from './support/chromium.ts';
import {
  byTestId,
  editorText,
  openSection,
  remoteCaretNames,
  screenshot,
  signUp,
  VIEWPORT,
  waitForSync,
} from './web/tour-page.ts';
import { TourRelay } from './web/tour-relay.ts';

/** Polls like `expect.poll`, long enough for a relay round trip or a reconnect. */
function poll<T>(read: () => Promise<T> | T) {
  return expect.poll(read, { timeout: 15_000, interval: 100 });
}

/**
 * The product tour, driven in a real browser against a real relay: two people (A and B) and
 * an admin, each in their own browser context (their own IndexedDB). Every step saves a
 * screenshot to test/screenshots/, which the README's Tour section shows.
 */
describe('the product tour in a browser', () => {
  let work: string;
  let relay: TourRelay;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  let pageA: Page;
  let pageB: Page;
  let userA: string;
  let userB: string;
  let docId: string;

  const newPage = async (): Promise<Page> => {
    const context = await browser.newContext({ viewport: VIEWPORT, locale: 'en-GB', timezoneId: 'UTC' });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(relay.url);
    return page;
  };

  beforeAll(async () => {
    if (!hasChromium()) {
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
    }
    work = await mkdtemp(join(tmpdir(), 'scopesync-web-tour-'));
    await buildWebApp(join(work, 'web'));
    relay = new TourRelay(join(work, 'data'), join(work, 'web'));
    await relay.start();
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await relay?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('signs up two devices, each shown its user id', async () => {
    pageA = await newPage();
    await byTestId(pageA, 'welcome').waitFor();
    await screenshot(pageA, '01-welcome');

    userA = await signUp(pageA, 'Ada’s laptop');
    expect(userA).toMatch(/^user_[0-9a-f]{16}$/);
    await poll(() => byTestId(pageA, 'device-user-id').textContent()).toBe(userA);
    await waitForSync(pageA, 'online', 0);
    await screenshot(pageA, '02-device');

    pageB = await newPage();
    userB = await signUp(pageB, 'Bob’s phone');
    expect(userB).toMatch(/^user_[0-9a-f]{16}$/);
    expect(userB).not.toBe(userA);
  });

  it('shows both people the same safety number for their keys', async () => {
    await byTestId(pageA, 'safety-user').fill(userB);
    await byTestId(pageA, 'safety-compare').click();
    await byTestId(pageB, 'safety-user').fill(userA);
    await byTestId(pageB, 'safety-compare').click();
    await poll(() => byTestId(pageA, 'safety-number').textContent()).toMatch(/^\d{5}( \d{5}){5}$/);
    const seenByA = await byTestId(pageA, 'safety-number').textContent();
    await poll(() => byTestId(pageB, 'safety-number').textContent()).toBe(seenByA);
    await screenshot(pageA, '02b-safety-number');
  });

  it('publishes a profile anyone can look up by user id', async () => {
    await openSection(pageA, 'profile');
    await byTestId(pageA, 'profile-name').fill('Ada Lovelace');
    await byTestId(pageA, 'profile-bio').fill('Writes the notes. Ask me about engines.');
    await byTestId(pageA, 'profile-save').click();
    await poll(() => byTestId(pageA, 'profile-notice').textContent()).toContain('Saved');
    await waitForSync(pageA, 'online', 0);

    await openSection(pageB, 'profile');
    await byTestId(pageB, 'profile-name').fill('Bob');
    await byTestId(pageB, 'profile-save').click();
    await poll(() => byTestId(pageB, 'profile-notice').textContent()).toContain('Saved');
    await byTestId(pageB, 'lookup-id').fill('user_0000000000000000');
    await byTestId(pageB, 'lookup-submit').click();
    await poll(() => byTestId(pageB, 'lookup-notice').textContent()).toContain('There is no user');

    await byTestId(pageB, 'lookup-id').fill(userA);
    await byTestId(pageB, 'lookup-submit').click();
    await poll(() => byTestId(pageB, 'lookup-name').textContent()).toBe('Ada Lovelace');
    await screenshot(pageB, '03-profile-lookup');
  });

  it('shows the announcement read-only to users, published by an admin', async () => {
    const admin = await relay.relay.runtime.createUser({ deviceName: 'ops console', level: Level.Admin });
    const pageAdmin = await newPage();
    await pageAdmin.locator('summary').click();
    await byTestId(pageAdmin, 'api-key').fill(admin.key);
    await byTestId(pageAdmin, 'use-key').click();
    await poll(() => byTestId(pageAdmin, 'my-user-id').textContent()).toBe(admin.userId);
    await openSection(pageAdmin, 'announcement');
    const text = 'The relay restarts at 18:00 UTC — keep working, your edits will wait.';
    await byTestId(pageAdmin, 'announcement-text').fill(text);
    await byTestId(pageAdmin, 'announcement-publish').click();
    await poll(() => byTestId(pageAdmin, 'announcement-notice').textContent()).toContain('Published');

    // B sees it live in the banner, and cannot change it.
    await poll(() => byTestId(pageB, 'banner-text').textContent()).toBe(text);
    await openSection(pageB, 'announcement');
    expect(await byTestId(pageB, 'announcement-text').getAttribute('readonly')).not.toBeNull();
    await byTestId(pageB, 'announcement-try').click();
    await poll(() => byTestId(pageB, 'announcement-notice').textContent()).toContain('not allowed');
    await screenshot(pageB, '04-announcement-read-only');
  });

  it('lets everyone sign the guestbook, seen live by the others', async () => {
    await openSection(pageA, 'guestbook');
    await openSection(pageB, 'guestbook');
    await byTestId(pageB, 'guestbook-input').fill('Hello from Bob — offline-first is neat.');
    await byTestId(pageB, 'guestbook-sign').click();
    await poll(() => byTestId(pageA, 'guestbook-entries').textContent()).toContain('Hello from Bob');
    await byTestId(pageA, 'guestbook-input').fill('Welcome, Bob!');
    await byTestId(pageA, 'guestbook-sign').click();
    await poll(() => byTestId(pageB, 'guestbook-entries').textContent()).toContain('Welcome, Bob!');
    await screenshot(pageA, '05-guestbook');
  });

  it('keeps a private note written with the relay down, through a reload, and syncs it when the relay returns', async () => {
    await openSection(pageA, 'notes');
    await poll(() => byTestId(pageA, 'notes-e2e').isVisible()).toBe(true);
    // The app shell must be cached before the relay goes away.
    await pageA.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });

    await relay.stop();
    await waitForSync(pageA, 'offline', 0);
    const note = 'Buy milk. Written while the relay was down.';
    await byTestId(pageA, 'notes-text').fill(note);
    await waitForSync(pageA, 'offline', 1);

    await pageA.reload();
    await byTestId(pageA, 'section-notes').waitFor({ state: 'visible' });
    await poll(() => byTestId(pageA, 'notes-text').inputValue()).toBe(note);
    await waitForSync(pageA, 'offline', 1);
    await screenshot(pageA, '06-offline-note');

    await relay.start();
    await waitForSync(pageA, 'online', 0);
    await screenshot(pageA, '07-note-synced');

    // A second browser of A's, linked with A's recovery phrase, reads the note from the relay.
    await openSection(pageA, 'device');
    await byTestId(pageA, 'show-phrase').click();
    await poll(() => byTestId(pageA, 'recovery-words').locator('li').count()).toBe(24);
    const phrase = (await byTestId(pageA, 'recovery-words').locator('li').allTextContents()).join(' ');
    const pageA2 = await newPage();
    await pageA2.locator('summary').click();
    await byTestId(pageA2, 'recovery-phrase').fill(phrase);
    await byTestId(pageA2, 'link-device').click();
    await poll(() => byTestId(pageA2, 'my-user-id').textContent()).toBe(userA);
    await openSection(pageA2, 'notes');
    await poll(() => byTestId(pageA2, 'notes-text').inputValue()).toBe(note);
    await pageA2.context().close();

    // On the relay it is ciphertext only: the relay never sees the words.
    const store = new SqliteDocStore({ path: join(work, 'data', DOCS_DB_FILE) });
    try {
      const entries = await store.load(`USER_PRIVATE/${userA}/notes`);
      expect(entries.length).toBeGreaterThan(0);
      const stored = Buffer.concat(entries.map((entry) => Buffer.from(entry.data))).toString('latin1');
      expect(stored).not.toContain('Buy milk');
    } finally {
      await store.close();
    }
  });

  it('shares a document read-only: B sees A typing live and cannot type into it', async () => {
    await openSection(pageA, 'docs');
    await byTestId(pageA, 'new-doc').click();
    await byTestId(pageA, 'doc-editor').waitFor();
    docId = (await byTestId(pageA, 'doc-id').textContent()) ?? '';
    expect(docId).toMatch(/^doc-[0-9a-f]{12}$/);
    await byTestId(pageA, 'doc-title').fill('Trip plan');
    await byTestId(pageA, 'doc-title').press('Enter');
    await byTestId(pageA, 'doc-text').fill('Day 1: Lisbon');
    await waitForSync(pageA, 'online', 0);

    // An unknown user id is refused in words.
    await byTestId(pageA, 'share-user').fill('user_0000000000000000');
    await byTestId(pageA, 'share-submit').click();
    await poll(() => byTestId(pageA, 'share-notice').textContent()).toContain('There is no user');

    await byTestId(pageA, 'share-user').fill(userB);
    await byTestId(pageA, 'share-level').selectOption('read_only');
    await byTestId(pageA, 'share-submit').click();
    const row = pageA.locator(`[data-testid="share-row"][data-user="${userB}"]`);
    await poll(() => row.getAttribute('data-level')).toBe('read_only');
    await screenshot(pageA, '08-share-read-only');

    // B pastes no id: the document A shared shows up in B's list ("shared with me").
    await openSection(pageB, 'docs');
    const sharedItem = pageB.locator(`[data-testid="doc-list-item"][data-doc-id="${docId}"]`);
    await sharedItem.click();
    await poll(() => byTestId(pageB, 'doc-access').textContent()).toBe('Read-only');
    await poll(() => editorText(pageB)).toBe('Day 1: Lisbon');

    // A types; B sees every keystroke arrive, and A's caret with her name.
    await byTestId(pageA, 'doc-text').click();
    await pageA.keyboard.press('Control+End');
    await pageA.keyboard.type('\nDay 2: Porto');
    await poll(() => editorText(pageB)).toBe('Day 1: Lisbon\nDay 2: Porto');
    await poll(() => remoteCaretNames(pageB)).toEqual(['Ada Lovelace']);

    // B cannot type into it: the editor is read-only.
    expect(await byTestId(pageB, 'doc-text').getAttribute('contenteditable')).toBe('false');
    await byTestId(pageB, 'doc-text').click();
    await pageB.keyboard.type('hijack');
    await pageB.keyboard.press('Enter');
    expect(await editorText(pageB)).toBe('Day 1: Lisbon\nDay 2: Porto');
    await waitForSync(pageB, 'online', 0);
    expect(await editorText(pageA)).toBe('Day 1: Lisbon\nDay 2: Porto');
    await screenshot(pageB, '09-read-only-live');
  });

  it('upgrades B to read-write: both type into the same text at once', async () => {
    await pageA
      .locator(`[data-testid="share-row"][data-user="${userB}"] [data-testid="share-row-level"]`)
      .selectOption('read_write');
    await poll(() => byTestId(pageB, 'doc-access').textContent()).toBe('Can edit');
    await poll(() => byTestId(pageB, 'doc-text').getAttribute('contenteditable')).toBe('true');

    // B at the end, A at the start, typing at the same time.
    await byTestId(pageB, 'doc-text').click();
    await pageB.keyboard.press('Control+End');
    await byTestId(pageA, 'doc-text').click();
    await pageA.keyboard.press('Control+Home');
    await Promise.all([
      pageB.keyboard.type('\nBob: I book the train'),
      pageA.keyboard.type('Packing list first! '),
    ]);

    const both = 'Packing list first! Day 1: Lisbon\nDay 2: Porto\nBob: I book the train';
    await poll(() => editorText(pageA)).toBe(both);
    await poll(() => editorText(pageB)).toBe(both);
    // Each sees the other's caret, named — and never their own.
    await poll(() => remoteCaretNames(pageA)).toEqual(['Bob']);
    await poll(() => remoteCaretNames(pageB)).toEqual(['Ada Lovelace']);
    await waitForSync(pageA, 'online', 0);
    await waitForSync(pageB, 'online', 0);
    await screenshot(pageA, '10-both-edit');
  });

  it('revokes B’s access: B’s open view says so at once', async () => {
    await pageA
      .locator(`[data-testid="share-row"][data-user="${userB}"] [data-testid="share-revoke"]`)
      .click();
    await poll(() => byTestId(pageA, 'share-notice').textContent()).toContain('Revoked');
    await poll(() => byTestId(pageB, 'doc-notice').textContent()).toContain('revoked');
    expect(await byTestId(pageB, 'doc-access').textContent()).toBe('No access');
    // The editor and its text are gone from B's screen (and the copy from B's browser).
    expect(await byTestId(pageB, 'doc-text').count()).toBe(0);
    await screenshot(pageB, '11-revoked');
  });

  it('shows A, from the audit log, who read and changed their data', async () => {
    await openSection(pageA, 'activity');
    const rows = byTestId(pageA, 'activity-rows');
    await poll(async () => {
      await byTestId(pageA, 'activity-refresh').click();
      return rows.textContent();
    }).toContain(`document “Trip plan” (${docId})`);
    const readByB = pageA.locator(
      `[data-testid="activity-row"][data-accessor="${userB}"][data-action="read"]`,
    );
    expect(await readByB.count()).toBeGreaterThan(1);
    expect(await rows.textContent()).toContain('read your public profile');
    await screenshot(pageA, '12-activity');
  });
});
