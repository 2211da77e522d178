import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRelay, type Relay } from '@scopesync/relay';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, hasChromium, launchChromium } from './support/chromium.ts';

/*
 * Attack 7 of issue 17, in the page: the relay serves the web app that holds the user's keys.
 * A script that got into that page (an injected <script>, an eval'd string, a beacon to
 * another host) is refused by the Content-Security-Policy every served file carries, while the
 * app's own script, its WebAssembly and its connections to the relay (HTTP and WebSocket) work.
 */

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>csp</title>
<script type="module" src="/app.js"></script></head><body><p id="out">pending</p>
<script>window.inlineRan = true;</script></body></html>`;

// The app's own script probes what the policy lets through and writes the verdicts to the page.
const APP = `
const verdicts = {};
const settle = (p) => p.then(() => 'allowed', () => 'blocked');
verdicts.inline = window.inlineRan === true ? 'allowed' : 'blocked';
try { eval('1 + 1'); verdicts.eval = 'allowed'; } catch { verdicts.eval = 'blocked'; }
const injected = document.createElement('script');
injected.textContent = 'window.injectedRan = true;';
document.body.append(injected);
verdicts.injected = window.injectedRan === true ? 'allowed' : 'blocked';
// The smallest valid module: libsodium compiles WebAssembly the same way.
verdicts.wasm = await settle(WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])));
verdicts.relayHttp = await settle(fetch('/health').then((r) => { if (!r.ok) throw new Error(); }));
verdicts.relaySocket = await new Promise((resolve) => {
  try {
    const ws = new WebSocket(location.origin.replace('http', 'ws') + '/sync');
    ws.onopen = () => { ws.close(); resolve('allowed'); };
    ws.onerror = () => resolve('blocked');
  } catch { resolve('blocked'); }
});
verdicts.otherHost = await settle(fetch(new URL(location.search.slice(1))));
document.getElementById('out').textContent = JSON.stringify(verdicts);
`;

describe('the Content-Security-Policy of the served app', () => {
  let work: string;
  let relay: Relay;
  let url: string;
  let elsewhere: Server;
  let elsewhereUrl: string;
  let browser: Browser;
  /** Requests the other host received: a leak when any arrives. */
  const received: string[] = [];

  beforeAll(async () => {
    if (!hasChromium()) throw new Error(`${CHROMIUM} is missing: install Debian's chromium`);
    work = await mkdtemp(join(tmpdir(), 'scopesync-csp-'));
    const app = join(work, 'app');
    await mkdir(app);
    await writeFile(join(app, 'index.html'), PAGE);
    await writeFile(join(app, 'app.js'), APP);
    relay = createRelay({ port: 0, staticDir: app, rateLimit: false, log: () => undefined });
    url = (await relay.listen()).url;
    elsewhere = createServer((req, res) => {
      received.push(req.url ?? '');
      res.writeHead(200, { 'access-control-allow-origin': '*' }).end('ok');
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    elsewhereUrl = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/steal`;
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    await new Promise((resolve) => elsewhere?.close(resolve));
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('runs only the app’s own files, talks only to the relay, and says so in its headers', async () => {
    const page = await browser.newPage();
    const answer = await page.goto(`${url}/?${elsewhereUrl}`);
    const headers = answer?.headers() ?? {};
    expect(headers['content-security-policy']).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(headers['x-frame-options']).toBe('DENY');
    expect(headers['x-content-type-options']).toBe('nosniff');
    await page.waitForFunction(() => document.getElementById('out')?.textContent !== 'pending');
    const verdicts = JSON.parse((await page.textContent('#out')) ?? '{}');
    expect(verdicts).toEqual({
      inline: 'blocked',
      eval: 'blocked',
      injected: 'blocked',
      wasm: 'allowed',
      relayHttp: 'allowed',
      relaySocket: 'allowed',
      otherHost: 'blocked',
    });
    expect(received).toEqual([]);
    await page.close();
  });

  it('answers the API with a policy that lets nothing run', async () => {
    const health = await fetch(`${url}/health`);
    expect(health.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(health.headers.get('x-content-type-options')).toBe('nosniff');
  });
});
