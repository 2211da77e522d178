import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSyncError } from '@scopesync/core';
import { createRelay } from '@scopesync/relay';
import { afterEach, describe, expect, it } from 'vitest';
import { call } from './support/http-client.ts';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

// What a relay exposes, and to whom: /metrics, CORS, the address rate limits see, slow
// request bodies, and the static directory (docs/security.md, "Exposure and resource bounds").

const relays: TestRelay[] = [];
afterEach(async () => {
  for (const r of relays.splice(0)) await r.close();
});

async function relayWith(options: Parameters<typeof startTestRelay>[0]): Promise<TestRelay> {
  const r = await startTestRelay(options);
  relays.push(r);
  return r;
}

describe('relay exposure', () => {
  it('answers /metrics only with its bearer token when one is set', async () => {
    const r = await relayWith({ metricsEndpoint: { token: 'metrics-secret' } });
    expect((await r.api('GET', '/metrics')).status).toBe(401);
    const wrong = { headers: { authorization: 'Bearer metrics-secreT' } };
    expect((await r.api('GET', '/metrics', wrong)).status).toBe(401);
    const right = await r.api('GET', '/metrics', { headers: { authorization: 'Bearer metrics-secret' } });
    expect(right.status).toBe(200);
    expect(new TextDecoder().decode(right.bytes)).toContain('scopesync_http_requests_total');
  });

  it('serves /metrics on its own listener only, when given one', async () => {
    const r = await relayWith({ metricsEndpoint: { port: 0, host: '127.0.0.1' } });
    expect((await r.api('GET', '/metrics')).status).toBe(404);
    const metricsUrl = r.relay.metricsUrl as string;
    expect(metricsUrl).not.toBe(r.url);
    expect((await call(metricsUrl, 'GET', '/metrics')).status).toBe(200);
    expect((await call(metricsUrl, 'GET', '/health')).status).toBe(404);
  });

  it('tells only allowed origins they may read answers, when given an allow-list', async () => {
    const open = await relayWith({});
    const any = await open.api('GET', '/health', { headers: { origin: 'https://elsewhere.example' } });
    expect(any.headers.get('access-control-allow-origin')).toBe('*');
    const r = await relayWith({ corsOrigins: ['https://app.example'] });
    const allowed = await r.api('GET', '/health', { headers: { origin: 'https://app.example' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(allowed.headers.get('vary')).toContain('origin');
    const other = await r.api('OPTIONS', '/userdata/PUBLIC_RW/_/x', {
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect(other.headers.get('access-control-allow-methods')).toBeNull();
  });

  it('rate-limits guests by their forwarded address only behind a trusted proxy', async () => {
    const rateLimit = { capacity: 2, refillPerSecond: 0.001 };
    const from = (address: string) => ({ headers: { 'x-forwarded-for': address } });
    const proxied = await relayWith({ rateLimit, trustedProxies: ['127.0.0.1/32', '::1'] });
    expect((await proxied.api('GET', '/health', from('198.51.100.1'))).status).toBe(200);
    expect((await proxied.api('GET', '/health', from('198.51.100.1'))).status).toBe(200);
    expect((await proxied.api('GET', '/health', from('198.51.100.1'))).status).toBe(429);
    // Another client behind the same proxy keeps its own bucket.
    expect((await proxied.api('GET', '/health', from('198.51.100.2'))).status).toBe(200);
    // Without trusted proxies the header is the client's word: ignored.
    const direct = await relayWith({ rateLimit });
    expect((await direct.api('GET', '/health', from('198.51.100.1'))).status).toBe(200);
    expect((await direct.api('GET', '/health', from('198.51.100.2'))).status).toBe(200);
    expect((await direct.api('GET', '/health', from('198.51.100.3'))).status).toBe(429);
  });

  it('cuts a request whose body does not arrive within the request timeout', async () => {
    const r = await relayWith({ requestTimeoutMs: 300 });
    const { port } = new URL(r.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1');
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk.toString();
      });
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
      socket.write(
        'POST /userdata/_/PUBLIC_RW/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"',
      );
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('refuses a write the caller may not make before reading its body', async () => {
    const r = await relayWith({});
    const owner = await r.user();
    const other = await r.user();
    const { port } = new URL(r.url);
    /** Sends the head and a sliver of a body that never completes; resolves with the first status line. */
    const refusedEarly = (path: string, headers: string): Promise<string> =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1');
        socket.on('data', (chunk) => {
          resolve(chunk.toString().split('\r\n')[0] ?? '');
          socket.destroy();
        });
        socket.on('error', reject);
        socket.write(`${path} HTTP/1.1\r\nHost: x\r\n${headers}Content-Length: 1000000\r\n\r\n{"value"`);
      });
    expect(await refusedEarly(`POST /userdata/${owner.userId}/USER_PRIVATE/diary`, '')).toMatch(
      /^HTTP\/1\.1 40[134]/,
    );
    expect(
      await refusedEarly(`POST /userdata/${owner.userId}/USER_PUBLIC/profile`, `x-api-key: ${other.key}\r\n`),
    ).toMatch(/^HTTP\/1\.1 40[34]/);
    await r.api('PUT', '/blob/mine', { key: owner.key, body: new Uint8Array([1]) });
    expect(await refusedEarly('PUT /blob/mine', `x-api-key: ${other.key}\r\n`)).toMatch(/^HTTP\/1\.1 40[34]/);
    // The denial is audited once, as the full write would have been.
    const audit = await r.relay.store.queryAudit({});
    expect(audit.filter((e) => e.result === 'denied' && e.key === 'diary')).toHaveLength(1);
  });

  it('refuses a write that would grow a document past the bound of its scope with 413', async () => {
    const r = await relayWith({ docs: { maxBytesByScope: { PUBLIC_RW: 2048 } } });
    const small = await r.api('POST', '/userdata/_/PUBLIC_RW/board', { body: { value: { note: 'hi' } } });
    expect(small.status).toBe(200);
    const big = await r.api('POST', '/userdata/_/PUBLIC_RW/board', {
      body: { value: { note: 'x'.repeat(4096) } },
    });
    expect(big.status).toBe(413);
    expect(big.json).toMatchObject({ error: 'TooLarge' });
    expect((await r.api('GET', '/userdata/_/PUBLIC_RW/board')).json).toMatchObject({ value: { note: 'hi' } });
    // Other scopes keep the default bound.
    const user = await r.user();
    const own = await r.api('POST', `/userdata/${user.userId}/USER_PUBLIC/profile`, {
      key: user.key,
      body: { value: { note: 'x'.repeat(4096) } },
    });
    expect(own.status).toBe(200);
  });

  it('refuses to serve an empty static dir or one holding its data dir', async () => {
    const base = await mkdtemp(join(tmpdir(), 'scopesync-exposure-'));
    try {
      await mkdir(join(base, 'data'));
      for (const staticDir of ['', base, join(base, 'data')]) {
        let error: unknown = null;
        try {
          createRelay({ dataDir: join(base, 'data'), staticDir });
        } catch (e) {
          error = e;
        }
        expect(isSyncError(error, 'BadRequest'), JSON.stringify(staticDir)).toBe(true);
      }
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
