import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { Level } from '@scopesync/core';
import { type SeededRandom, withSeed } from '@scopesync/testing';
import { expect } from 'vitest';
import { type FuzzBackend, type FuzzRelay, startFuzzRelay } from './fuzz-backend.ts';
import { call } from './http-client.ts';
import type { TestRelay } from './start-test-relay.ts';

// Seeded fuzzing of the HTTP API: random methods, paths, headers and bodies (huge declared
// lengths and raw garbage included). The relay must never crash, never answer 5xx, and a
// request that fails must leave every stored byte as it was (the audit log aside: recording
// denials is its job, and its chain must still verify). Run against a relay on SQLite by
// fuzz-http.test.ts and on both backends by the chaos suite; call it inside a Vitest test.

const MAX_BODY = 64 * 1024;

let fuzzed: FuzzRelay;
let t: TestRelay;
let agent: Agent;
const users: { key: string; userId: string }[] = [];
const revokedKeys: string[] = [];

async function prepare(backend: FuzzBackend): Promise<void> {
  // No compaction: it rewrites log rows in the background without changing any content.
  fuzzed = await startFuzzRelay(backend, {
    limits: { maxBodyBytes: MAX_BODY },
    docs: { compactAfter: 1_000_000 },
  });
  t = fuzzed.relay;
  agent = new Agent({ keepAlive: true, maxSockets: 1 });
  users.length = 0;
  revokedKeys.length = 0;
  for (const [name, level] of [
    ['alice', Level.User],
    ['bob', Level.User],
    ['mod', Level.Moderator],
    ['admin', Level.Admin],
  ] as const) {
    users.push(await t.user(name, level));
  }
  const [alice, bob] = users as [{ key: string; userId: string }, { key: string; userId: string }];
  const revoked = await t.user('revoked');
  await call(t.url, 'DELETE', `/keys/${revoked.key}`, { key: revoked.key });
  revokedKeys.push(revoked.key);
  // Something to read, overwrite, share and delete.
  await call(t.url, 'POST', `/userdata/${alice.userId}/USER_PUBLIC/profile`, {
    key: alice.key,
    body: { value: { name: 'Ada' } },
  });
  await call(t.url, 'POST', `/userdata/${alice.userId}/USER_PUBLIC/draft`, {
    key: alice.key,
    body: { value: { t: 1 }, read: 1 },
  });
  await call(t.url, 'POST', '/userdata/_/PUBLIC_RW/board', { body: { value: { notes: [] } } });
  await t.relay.runtime.set('SERVER_SCOPE/_/config', { secret: true });
  await t.relay.runtime.set('PUBLIC_READ/_/news', { text: 'hi' }, { read: 2 });
  await call(t.url, 'PUT', '/blob/doc', { key: alice.key, body: 'bytes' });
  await call(t.url, 'POST', '/share/doc', {
    key: alice.key,
    body: { user_id: bob.userId, access_level: 'read_only' },
  });
}

/** A digest of every stored byte but the audit log's. */
async function snapshot(): Promise<string> {
  const tables = [
    'SELECT * FROM users ORDER BY user_id',
    'SELECT * FROM api_keys ORDER BY key_hash',
    'SELECT * FROM objects ORDER BY name',
    'SELECT * FROM blob_data ORDER BY name',
    'SELECT * FROM shares ORDER BY blob_id, user_id',
    'SELECT * FROM mod_grants ORDER BY source, position',
    'SELECT * FROM doc_entries ORDER BY doc, seq',
    'SELECT * FROM doc_heads ORDER BY doc',
  ];
  const digests: string[] = [];
  for (const sql of tables) digests.push(await fuzzed.stored.digest(sql));
  return digests.join(' ');
}

const METHODS = [
  'GET',
  'GET',
  'GET',
  'POST',
  'POST',
  'PUT',
  'PUT',
  'DELETE',
  'DELETE',
  'HEAD',
  'OPTIONS',
  'PATCH',
  'TRACE',
  'FOO',
];
const SCOPES = [
  'USER_PUBLIC',
  'USER_PRIVATE',
  'PUBLIC_READ',
  'PUBLIC_RW',
  'SERVER_SCOPE',
  'MOD_DATA',
  'user_public',
  'NOPE',
  '',
];
const KEYS = [
  'profile',
  'draft',
  'board',
  'config',
  'news',
  'a/b',
  'x',
  'doc',
  'notes/2024',
  '.',
  '..',
  'a//b',
  '',
];
const JUNK = [
  '%',
  '%zz',
  '%00',
  '%2e%2e',
  '..%2f',
  '%E0%A4%A',
  '\u00e9',
  '💥',
  '*',
  ' ',
  '?',
  '#',
  '~',
  ';',
  "'",
  '"',
  '<x>',
  '\\',
];

function randomText(r: SeededRandom, max: number): string {
  const alphabet = 'abcXYZ019._~:@/-%?#&= \\\u00e9\u4e2d';
  let out = '';
  const n = r.int(0, max);
  for (let i = 0; i < n; i++) out += alphabet[r.int(0, alphabet.length - 1)];
  return out;
}

/** A path segment: usually something valid, sometimes broken in one of many ways. */
function segment(r: SeededRandom, valid: readonly string[]): string {
  switch (r.int(0, 9)) {
    case 0:
      return r.pick(JUNK);
    case 1:
      return randomText(r, 12);
    case 2:
      return 'x'.repeat(r.int(250, 3000));
    case 3:
      return encodeURIComponent(randomText(r, 20));
    default: {
      const v = r.pick(valid);
      return r.bool() ? encodeURIComponent(v) : v;
    }
  }
}

function userIds(): string[] {
  return [...users.map((u) => u.userId), 'user_0000000000000000', '_', 'Chat', 'user_XYZ'];
}

function randomPath(r: SeededRandom): string {
  const uid = () => segment(r, userIds());
  const key = () => segment(r, KEYS);
  const scope = () => segment(r, SCOPES);
  const query = () =>
    r.int(0, 3) === 0
      ? `?${['prefix', 'limit', 'cursor', 'target', 'since', 'after', 'key']
          .filter(() => r.bool())
          .map(
            (p) =>
              `${p}=${segment(r, ['a', '0', '1', '100', '-1', '99999999999999999999', users[0]?.userId ?? ''])}`,
          )
          .join('&')}`
      : '';
  const paths = [
    () => '/keys',
    () => '/keys/validate',
    () => `/keys/${segment(r, [users[0]?.key ?? '', 'nope'])}`,
    () => `/users/${uid()}/keys`,
    () => `/userdata/${uid()}/${scope()}/${key()}`,
    () => `/userdata/${uid()}/${scope()}/${key()}`,
    () => `/userdata/${uid()}/${scope()}${query()}`,
    () => `/blob/${key()}`,
    () => `/blob/${key()}/meta`,
    () => `/share/${key()}`,
    () => `/share/${key()}/${uid()}`,
    () => `/shares/incoming${query()}`,
    () => `/blobs/mine${query()}`,
    () => `/audit${query()}`,
    () =>
      r.pick([
        '/health',
        '/metrics',
        '/sync',
        '/sync/x',
        '/',
        '/index.html',
        '//',
        '/..',
        '/%2e%2e/relay.sqlite',
      ]),
    () =>
      `/${Array.from({ length: r.int(1, 6) }, () => segment(r, ['userdata', 'blob', 'share', 'keys', 'a'])).join('/')}`,
  ];
  return r.pick(paths)();
}

function randomJson(r: SeededRandom, depth = 0): unknown {
  switch (r.int(0, depth > 2 ? 3 : 6)) {
    case 0:
      return null;
    case 1:
      return r.int(-5, 12);
    case 2:
      return randomText(r, 10);
    case 3:
      return r.bool();
    case 4:
      return Array.from({ length: r.int(0, 3) }, () => randomJson(r, depth + 1));
    default: {
      const fields = [
        'value',
        'read',
        'write',
        'device_name',
        'user_id',
        'access_level',
        'sign_pk',
        '__proto__',
        'x',
      ];
      return Object.fromEntries(fields.filter(() => r.bool()).map((f) => [f, randomJson(r, depth + 1)]));
    }
  }
}

function randomBody(r: SeededRandom): Uint8Array | null {
  switch (r.int(0, 6)) {
    case 0:
      return null;
    case 1:
      return r.bytes(r.int(0, 2048));
    case 2:
      return new TextEncoder().encode(`{"value": ${randomText(r, 30)}`);
    case 3:
      return new Uint8Array(MAX_BODY + r.int(1, 1000));
    default: {
      const body = randomJson(r);
      // Often a plausible body: a value object, a share, a registration.
      const plausible = r.bool()
        ? r.pick([
            { value: { n: r.int(0, 9) }, ...(r.bool() ? { read: r.int(0, 3) } : {}) },
            { user_id: r.pick(userIds()), access_level: r.pick(['read_only', 'read_write', 'owner']) },
            { device_name: randomText(r, 140) },
          ])
        : body;
      return new TextEncoder().encode(JSON.stringify(plausible));
    }
  }
}

function randomHeaders(r: SeededRandom): Record<string, string> {
  const headers: Record<string, string> = {};
  const key = r.int(0, 9);
  if (key <= 5) headers['x-api-key'] = (users[key % users.length] as { key: string }).key;
  else if (key === 6) headers['x-api-key'] = r.pick(revokedKeys);
  else if (key === 7) headers.authorization = `Bearer ${randomText(r, 50).replace(/[^\x21-\x7e]/g, 'a')}`;
  if (r.int(0, 4) === 0)
    headers['if-match'] = r.pick(['0', '1', '"2"', 'W/"1"', '*', 'abc', '-1', '99999999999999999999']);
  if (r.int(0, 6) === 0) headers['if-none-match'] = r.pick(['"1"', 'x']);
  if (r.bool())
    headers['content-type'] = r.pick([
      'application/json',
      'text/plain',
      'application/octet-stream',
      'multipart/form-data',
    ]);
  if (r.int(0, 9) === 0) headers['x-junk'] = randomText(r, 200).replace(/[^\x20-\x7e]/g, '.');
  return headers;
}

interface Sent {
  readonly status: number;
}

function send(
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Uint8Array | null,
  hugeLength: boolean,
): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${t.url}${path}`, { method, headers, agent });
    req.on('error', (error: NodeJS.ErrnoException) => {
      // The relay may close the socket as it refuses an oversized body: the answer already came.
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') resolve({ status: -1 });
      else reject(error);
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0 }));
      if (hugeLength) req.destroy();
    });
    if (hugeLength) {
      req.setHeader('content-length', String(10 ** 12));
      req.flushHeaders();
    } else {
      // Explicit framing: without it Node sends a DELETE's body unframed, and the relay would
      // (rightly) read those bytes as a second, malformed request.
      if (body) req.setHeader('content-length', String(body.byteLength));
      req.end(body ?? undefined);
    }
  });
}

function sendRaw(bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const port = Number(new URL(t.url).port);
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    socket.on('data', () => undefined);
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.setTimeout(2000, () => socket.destroy());
  });
}

/** What one HTTP fuzz run did. */
export interface HttpFuzzStats {
  readonly requests: number;
  readonly rawGarbage: number;
  readonly statuses: ReadonlyMap<number, number>;
}

/**
 * Sends `requests` seeded random requests and `rawGarbage` raw byte streams to a fresh relay on
 * `backend`, checking after each one; closes the relay. Fails (with the seed) on a 5xx, a
 * stored byte changed by a failed request, or a relay that stops serving.
 */
export async function runHttpFuzz(options: {
  readonly backend: FuzzBackend;
  readonly seed: number;
  readonly requests: number;
  readonly rawGarbage: number;
}): Promise<HttpFuzzStats> {
  const { requests, rawGarbage } = options;
  await prepare(options.backend);
  try {
    return await withSeed(`fuzz-http (${options.backend})`, options.seed, async (r) => {
      const statuses = new Map<number, number>();
      let before = await snapshot();
      for (let i = 0; i < requests; i++) {
        const method = r.pick(METHODS);
        const path = randomPath(r);
        const headers = randomHeaders(r);
        const hugeLength = (method === 'POST' || method === 'PUT') && r.int(0, 99) === 0;
        const body =
          method === 'GET' || method === 'HEAD' || method === 'OPTIONS'
            ? r.int(0, 20) === 0
              ? randomBody(r)
              : null
            : randomBody(r);
        const { status } = await send(method, path, headers, body, hugeLength);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        const context = `request ${i}: ${method} ${path.slice(0, 120)} → ${status} ${JSON.stringify(headers)} ${body?.length} ${body ? new TextDecoder().decode(body.slice(0, 100)) : ''}`;
        expect(status, context).toBeLessThan(500);
        if (hugeLength) expect([413, -1], context).toContain(status);
        const after = await snapshot();
        if (status >= 400 || status === -1) expect(after, `${context} changed stored data`).toBe(before);
        before = after;
      }
      // Every kind of answer came up, not only one error.
      expect(statuses.get(200) ?? 0).toBeGreaterThan(requests / 100);
      expect(statuses.get(400) ?? 0).toBeGreaterThan(requests / 100);
      expect(statuses.get(404) ?? 0).toBeGreaterThan(requests / 100);

      for (let i = 0; i < rawGarbage; i++) {
        const garbage =
          r.int(0, 2) === 0
            ? new TextEncoder().encode(
                `${r.pick(['GET', 'POST', 'XX'])} ${randomText(r, 40)} HTTP/1.${r.int(0, 9)}\r\n${randomText(r, 60)}\r\n\r\n`,
              )
            : r.bytes(r.int(1, 4096));
        await sendRaw(garbage);
      }
      expect(await snapshot()).toBe(before);
      expect((await call(t.url, 'GET', '/health')).status).toBe(200);
      expect((await t.relay.runtime.verifyAudit()).ok).toBe(true);
      return { requests, rawGarbage, statuses };
    });
  } finally {
    agent.destroy();
    await fuzzed.close();
  }
}
