import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/**
 * Debian's chromium (the root `pretest` script, scripts/ensure-chromium.mjs, installs it), or
 * the binary SCOPESYNC_CHROMIUM names: the browser tests never download one.
 */
export const CHROMIUM = process.env.SCOPESYNC_CHROMIUM || '/usr/bin/chromium';

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
