import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { median } from '../driver/stats.ts';
import { withTimeout } from '../driver/time.ts';
import { forEachPeer, row, type Workload, withPeer } from '../driver/workload.ts';
import type { MetricRow } from '../report.ts';
import type { PeerName } from '../servers/peer.ts';
import type { BrowserBenchApi, BrowserColdStart } from './browser-page.ts';

/** Debian's chromium, or the binary SCOPESYNC_CHROMIUM names (as the browser tests use). */
const CHROMIUM = process.env.SCOPESYNC_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];
/** Bound on one fill or one cold start in the page. */
const STEP_TIMEOUT_MS = 240_000;
/** How long the page waits for every document to sync before it reports how many did. */
const SYNC_BOUND_MS = 60_000;

/** The page bundled from browser-page.ts and served on loopback. */
async function servePage(): Promise<{ url: string; close(): Promise<void> }> {
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL('./browser-page.ts', import.meta.url))],
    bundle: true,
    // A profile wants readable function names.
    minify: !process.env.BENCH_BROWSER_PROFILE,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['source'],
    external: ['node:*'],
    define: { 'process.env.NODE_ENV': '"production"' },
    write: false,
    logLevel: 'silent',
  });
  const script = bundle.outputFiles[0]?.text ?? '';
  const html =
    '<!doctype html><meta charset="utf-8"><title>bench</title><script type="module" src="/page.js"></script>';
  const server = createServer((req, res) => {
    const isScript = req.url?.startsWith('/page.js') === true;
    res.writeHead(200, {
      'content-type': isScript ? 'text/javascript' : 'text/html',
      'cache-control': 'no-store',
    });
    res.end(isScript ? script : html);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * One round in a fresh browser context (its own IndexedDB): fill the documents through the
 * page, reload it (a cold start: nothing in memory, everything in IndexedDB), open them again.
 */
async function round(
  browser: Browser,
  pageUrl: string,
  name: PeerName,
  serverUrl: string,
  docs: number,
  roundNo: number,
): Promise<BrowserColdStart> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(pageUrl);
    await page.waitForFunction(() => 'bench' in globalThis);
    const ours = name === 'scopesync';
    await withTimeout(
      page.evaluate(
        ([url, n, isOurs, r]) => {
          const api = (globalThis as unknown as { bench: BrowserBenchApi }).bench;
          return isOurs ? api.fillOurs(url, n) : api.fillPeer(url, n, r);
        },
        [serverUrl, docs, ours, roundNo] as const,
      ),
      STEP_TIMEOUT_MS,
      `filling ${docs} docs in the page`,
    );
    await page.reload();
    await page.waitForFunction(() => 'bench' in globalThis);
    // BENCH_BROWSER_PROFILE=<dir>: a CPU profile of the page during each cold start, per peer and round.
    const profileDir = process.env.BENCH_BROWSER_PROFILE;
    const cdp = profileDir ? await context.newCDPSession(page) : null;
    if (cdp) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.start');
    }
    const opened = await withTimeout(
      page.evaluate(
        ([url, n, isOurs, bound, r]) => {
          const api = (globalThis as unknown as { bench: BrowserBenchApi }).bench;
          return isOurs ? api.openOurs(url, n, bound) : api.openPeer(url, n, bound, r);
        },
        [serverUrl, docs, ours, SYNC_BOUND_MS, roundNo] as const,
      ),
      STEP_TIMEOUT_MS,
      `opening ${docs} docs after the reload`,
    );
    if (cdp && profileDir) {
      const { profile } = await cdp.send('Profiler.stop');
      await mkdir(profileDir, { recursive: true });
      await writeFile(join(profileDir, `${name}-${roundNo + 1}.cpuprofile`), JSON.stringify(profile));
    }
    return opened;
  } finally {
    await context.close();
  }
}

/**
 * Browser workload: our client in real Chromium with real IndexedDB against y-indexeddb +
 * y-websocket's provider on the stock y-websocket server, both in the same browser. Each
 * round fills N documents, reloads the page and times, from the call that opens them: the
 * first document read from IndexedDB, all N read, and all N synced with the server.
 */
export const browserWorkload: Workload = {
  id: 'browser',
  title: 'Browser (Chromium, real IndexedDB)',
  async run(ctx) {
    const { docs, rounds } = ctx.config.browser;
    const peers = ctx.peers.filter((p) => p === 'scopesync' || p === 'y-websocket');
    if (!existsSync(CHROMIUM)) {
      const message = `skipped: ${CHROMIUM} is missing (apt-get install -y chromium, or set SCOPESYNC_CHROMIUM)`;
      ctx.log(`browser: ${message}`);
      return { id: 'browser', title: this.title, rows: [], notes: [message] };
    }
    const page = await servePage();
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const outcomes = await forEachPeer(
        ctx,
        'browser',
        (name) =>
          withPeer(ctx, name, async (peer) => {
            const serverUrl = name === 'scopesync' ? peer.url : peer.docUrl('').replace(/\/[^/]*$/, '');
            const results: BrowserColdStart[] = [];
            for (let r = 0; r < rounds; r++) {
              results.push(await round(browser, page.url, name, serverUrl, docs, r));
              ctx.log(`browser: ${name} round ${r + 1}: ${JSON.stringify(results.at(-1))}`);
            }
            return results;
          }),
        peers,
      );
      const pick = (key: 'firstReadMs' | 'allLoadedMs') => (results: BrowserColdStart[]) =>
        median(results.map((r) => r[key]));
      // A round in which not every document synced has no figure: the count row says how many did.
      const syncedMs = (results: BrowserColdStart[]) =>
        results.every((r) => r.allSyncedMs !== null)
          ? median(results.map((r) => r.allSyncedMs as number))
          : 'incomplete';
      const n = docs.toLocaleString('en-US');
      const rows: MetricRow[] = [
        row(outcomes, 'time to first read after a reload', 'ms', 'lower', pick('firstReadMs')),
        row(outcomes, `time to all ${n} loaded from IndexedDB`, 'ms', 'lower', pick('allLoadedMs')),
        row(outcomes, `time to all ${n} synced with the server`, 'ms', 'lower', syncedMs),
        row(outcomes, `documents synced within ${SYNC_BOUND_MS / 1000} s`, 'docs', 'higher', (results) =>
          Math.min(...results.map((r) => r.synced)),
        ),
        row(outcomes, 'documents loaded correctly', 'docs', 'higher', (results) =>
          Math.min(...results.map((r) => r.correct)),
        ),
      ];
      return {
        id: 'browser',
        title: this.title,
        rows,
        notes: [
          `${CHROMIUM} (headless) through playwright-core; each of ${rounds} round(s) in a fresh browser context: ${n} documents written through the page (one text insert each), the page reloaded, then every document opened at once and the clock started at that call. Figures are medians over the rounds (the least-correct round for the count).`,
          `scopesync: createClient (IndexedDbDocStore) and ${n} DocHandles over its one multiplexed socket; loaded = whenLoaded, synced = whenSynced. Peer: y-indexeddb (IndexeddbPersistence, one database per document) + y-websocket 3's WebsocketProvider (disableBc) on the stock y-websocket 2.1 server, one socket per document; loaded = persistence.whenSynced, synced = the provider's 'sync'. Its figures sit in the y-websocket column; Hocuspocus is not run. The peer fills its documents 100 sockets at a time (each provider closed after its write), then after the reload opens all ${n} providers at once, as a page holding ${n} docs would.`,
          `A document not synced within ${SYNC_BOUND_MS / 1000} s of the call is counted as not synced and the round's all-synced time is "incomplete": Chromium caps the WebSockets one page may hold open (255 per profile), so one-socket-per-document sync cannot hold ${n} documents open in one page.`,
        ],
        details: outcomes,
      };
    } finally {
      await browser.close();
      await page.close();
    }
  },
};
