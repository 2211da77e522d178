import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { type BundledPage, serveBundledPage } from '../support/bundled-page.ts';
import { CHROMIUM, hasChromium } from '../support/chromium.ts';
import { call } from '../support/http-client.ts';
import type { RelayGroup } from './relay-groups.ts';
import { servedItems } from './relay-reads.ts';
import type { SoakAddon, SoakContext } from './soak.ts';

// Browser crash, alongside the soak: our client in real Chromium (IndexedDB store) appends
// tokens through the cluster's faulty proxy and loses its tab mid-write, again and again — the
// tab closed, or the whole browser `kill -9`'d. Each restart opens the same profile (a
// persistent user-data-dir, so the same IndexedDB); a last run drains the outbox. Every token
// the page reported committed to IndexedDB must be served exactly once, and no token twice.

/** How many crashes, and how long a run may write before it is cut. */
export interface BrowserCrashOptions {
  readonly crashes: number;
  readonly tokensPerRun: number;
}

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];
const PAGE_TIMEOUT_MS = 60_000;

interface PageApi {
  start(): Promise<{ items: string[]; pending: number }>;
  run(prefix: string, count: number): Promise<void>;
  drained(): Promise<string[]>;
}

/** The main browser process of a profile (not its renderers or helpers), found by its user-data-dir. */
function browserPid(profile: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    if (args.some((a) => a === `--user-data-dir=${profile}`) && !args.some((a) => a.startsWith('--type=')))
      return Number(entry);
  }
  return undefined;
}

/** The browser-crash add-on of the soak: `crashes` lost tabs mid-write, on the cluster group. */
export function browserCrash(options: BrowserCrashOptions): SoakAddon {
  let skipped: string | null = null;
  let served: BundledPage | undefined;
  let profile = '';
  let group: RelayGroup | undefined;
  let key = '';
  let doc = '';
  let runs = 0;
  let crashes = 0;
  let tabsClosed = 0;
  let browsersKilled = 0;
  const durable = new Set<string>();
  const problems: string[] = [];

  /** Opens the profile and the page, loaded; `reported` receives each durable token. */
  const openPage = async (
    reported: (token: string) => void,
  ): Promise<{ context: BrowserContext; page: Page }> => {
    const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS });
    try {
      await context.exposeFunction('reportDurable', (token: string) => reported(token));
      const page = context.pages()[0] ?? (await context.newPage());
      const query = new URLSearchParams({ relay: (group as RelayGroup).url, key, doc });
      await page.goto(`${(served as BundledPage).url}?${query}`);
      await page.waitForFunction(() => 'api' in globalThis, undefined, { timeout: PAGE_TIMEOUT_MS });
      return { context, page };
    } catch (error) {
      await context.close().catch(() => undefined);
      throw error;
    }
  };
  const api = (page: Page) => ({
    start: () => page.evaluate(() => (globalThis as unknown as { api: PageApi }).api.start()),
    run: (prefix: string, count: number) =>
      page.evaluate(([p, n]) => (globalThis as unknown as { api: PageApi }).api.run(p, n), [
        prefix,
        count,
      ] as const),
    drained: () => page.evaluate(() => (globalThis as unknown as { api: PageApi }).api.drained()),
  });

  return {
    name: 'browser-crash',
    async prepare(ctx: SoakContext) {
      if (!hasChromium()) {
        skipped = `${CHROMIUM} is missing (apt-get install -y chromium): the browser crash did not run`;
        ctx.log(`browser-crash: ${skipped}`);
        return;
      }
      group = ctx.groups[0] as RelayGroup;
      const answer = await call(group.url, 'POST', '/keys', { body: { device_name: 'browser-crash' } });
      if (answer.status !== 200) throw new Error(`registering the browser client: ${answer.status}`);
      key = answer.json.key as string;
      doc = `USER_PUBLIC/${answer.json.user_id as string}/browser-crash`;
      served = await serveBundledPage(join(import.meta.dirname, '..', 'browser', 'crash-page.ts'));
      profile = await mkdtemp(join(tmpdir(), 'scopesync-chaos-chromium-'));
    },
    async run(ctx: SoakContext) {
      if (skipped !== null) return;
      const r = ctx.random;
      for (let i = 0; i < options.crashes && ctx.running(); i++) {
        runs += 1;
        const reports: string[] = [];
        let wake: (() => void) | undefined;
        const opened = await openPage((token) => {
          reports.push(token);
          wake?.();
        }).catch((error) => {
          problems.push(`run ${runs}: the page did not open: ${String(error)}`);
          return null;
        });
        if (opened === null) continue;
        const { context, page } = opened;
        const killBrowser = r.bool();
        try {
          await api(page).start();
          // Cut after a few durable tokens, with thousands still to come: mid-write for sure.
          const after = r.int(1, Math.max(1, Math.min(100, options.tokensPerRun >> 1)));
          void api(page)
            .run(`b${runs}`, options.tokensPerRun)
            .catch(() => undefined); // cut short by the crash
          const until = Date.now() + PAGE_TIMEOUT_MS;
          while (reports.length < after && Date.now() < until)
            await new Promise<void>((resolve) => {
              wake = resolve;
              setTimeout(resolve, 250);
            });
        } catch (error) {
          ctx.log(`browser-crash: a run ended early: ${String(error)}`);
        }
        // Mid-write: the page is still appending (its transactions in flight) when it goes.
        const pid = killBrowser ? browserPid(profile) : undefined;
        if (pid !== undefined) {
          process.kill(pid, 'SIGKILL');
          browsersKilled += 1;
        } else {
          await page.close({ runBeforeUnload: false }).catch(() => undefined);
          tabsClosed += 1;
        }
        await context.close().catch(() => undefined);
        // Only what reached us before the crash counts: each was committed when it was sent.
        for (const token of reports) durable.add(token);
        crashes += 1;
      }
    },
    async finish(ctx: SoakContext) {
      const violations: string[] = [...problems];
      try {
        if (skipped !== null || runs === 0)
          return { figures: { skipped: skipped === null ? 0 : 1 }, violations };
        // A last run on the same profile, never cut: it loads the outbox from IndexedDB and drains it.
        const { context, page } = await openPage(() => undefined);
        try {
          const loaded = await api(page).start();
          for (const token of durable)
            if (!loaded.items.includes(token))
              violations.push(`${token} was durable before the crash, gone after`);
          const synced = await api(page).drained();
          const group0 = group as RelayGroup;
          const checker = await call(group0.url, 'POST', '/keys', {
            body: { device_name: 'browser-reader' },
          });
          const relayItems = await servedItems(group0.url, checker.json.key as string, doc);
          for (const token of durable) {
            const n = relayItems.filter((x) => x === token).length;
            if (n !== 1) violations.push(`${token} is served ${n} times`);
          }
          if (new Set(relayItems).size !== relayItems.length) violations.push('a token is served twice');
          if (JSON.stringify(relayItems) !== JSON.stringify(synced))
            violations.push(`the reopened page holds ${synced.length} items, the relay ${relayItems.length}`);
        } finally {
          await context.close().catch(() => undefined);
        }
        ctx.log(`browser-crash: ${crashes} crashes, ${durable.size} tokens durable before them`);
      } catch (error) {
        violations.push(String(error));
      } finally {
        await served?.close();
        if (profile !== '') await rm(profile, { recursive: true, force: true });
      }
      return {
        figures: { crashes, tabsClosed, browsersKilled, durableBeforeCrash: durable.size, skipped: 0 },
        violations,
      };
    },
  };
}
