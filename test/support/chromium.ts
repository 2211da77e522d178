import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/** Debian's chromium: the browser tests never download one. */
export const CHROMIUM = '/usr/bin/chromium';

/** True when the browser tests can run here. */
export function hasChromium(): boolean {
  return existsSync(CHROMIUM);
}

/** Launches headless chromium the way CI runs it. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}
