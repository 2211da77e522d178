import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Locator, Page } from 'playwright-core';

/** Where the tour's screenshots go (committed; the README's Tour section shows them). */
export const SCREENSHOT_DIR = fileURLToPath(new URL('../screenshots/', import.meta.url));

/** The viewport every tour page uses, so screenshots stay small and alike. */
export const VIEWPORT = { width: 1000, height: 700 } as const;

/** Finds an element by its `data-testid`. */
export function byTestId(page: Page | Locator, id: string): Locator {
  return page.locator(`[data-testid="${id}"]`);
}

/** Registers the page's browser as a new device; resolves with the user id it shows. */
export async function signUp(page: Page, deviceName: string): Promise<string> {
  await byTestId(page, 'device-name').fill(deviceName);
  await byTestId(page, 'sign-up').click();
  const id = byTestId(page, 'my-user-id');
  await id.waitFor();
  return (await id.textContent()) ?? '';
}

/** Shows a section of the tour (by its hash id: notes, profile, docs, …). */
export async function openSection(page: Page, id: string): Promise<void> {
  await byTestId(page, `nav-${id}`).click();
  await byTestId(page, `section-${id}`).waitFor({ state: 'visible' });
}

/** Saves a screenshot of the viewport as `test/screenshots/<name>.png`. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  // Park the pointer in a corner, so no link is caught mid-hover.
  await page.mouse.move(0, 0);
  // `caret: 'hide'` blinks the caret out of the picture so screenshots do not differ run to run
  // (an injected <style> would be refused: the relay serves the app with a strict CSP).
  await page.screenshot({ path: `${SCREENSHOT_DIR}${name}.png`, caret: 'hide' });
}

/** Waits until the status pill reads `state` with `pending` unsynced changes. */
export async function waitForSync(page: Page, state: 'online' | 'offline', pending: number): Promise<void> {
  await page.waitForFunction(
    ([s, p]) => {
      const pill = document.querySelector<HTMLElement>('[data-testid="sync-status"]');
      return pill?.dataset.state === s && pill.dataset.pending === String(p);
    },
    [state, pending] as const,
    { timeout: 45_000 },
  );
}

/**
 * The text in the shared document's editor (CodeMirror), line by line as it shows it, without
 * the others' carets (widgets inside the lines that carry their names).
 */
export function editorText(page: Page): Promise<string> {
  return byTestId(page, 'doc-text').evaluate((content) =>
    Array.from(content.querySelectorAll('.cm-line'), (line) => {
      const copy = line.cloneNode(true) as HTMLElement;
      copy.querySelectorAll('.cm-ySelectionCaret').forEach((caret) => {
        caret.remove();
      });
      return copy.textContent ?? '';
    }).join('\n'),
  );
}

/** The names on the others' carets in the shared document's editor. */
export function remoteCaretNames(page: Page): Promise<string[]> {
  return byTestId(page, 'doc-editor').locator('.cm-ySelectionInfo').allTextContents();
}
