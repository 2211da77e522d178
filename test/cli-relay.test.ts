import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeMuxFrame, encodeMuxFrame } from '@scopesync/core';
import Database from 'better-sqlite3';
import { SETTINGS } from 'scopesync-relay';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { call } from './support/http-client.ts';
import { runCli as run, startCli as start } from './support/relay-cli.ts';

// The `scopesync-relay` command, run from source (no build) the way an operator runs it.

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'scopesync-cli-'));
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

describe('scopesync-relay', () => {
  it('creates an admin, sets levels, serves them and stops with exit 0 on SIGTERM', async () => {
    const created = await run(['admin', 'create', '--data-dir', dataDir, '--device-name', 'ops-laptop']);
    expect(created.code).toBe(0);
    const admin = JSON.parse(created.stdout) as { key: string; user_id: string };
    expect(admin.key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(admin.user_id).toMatch(/^user_[0-9a-f]{16}$/);

    const relay = await start([
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--static-dir',
      join(dataDir, 'no-web-app'),
    ]);
    try {
      expect(await call(relay.url, 'GET', '/keys/validate', { key: admin.key })).toMatchObject({
        status: 200,
        json: { user_id: admin.user_id, level: 10 },
      });
      const user = (await call(relay.url, 'POST', '/keys', { body: { device_name: 'phone' } })).json as {
        key: string;
        user_id: string;
      };
      // The CLI changes levels while the relay runs (WAL): the next request sees it.
      const set = await run(['level', 'set', user.user_id, 'moderator', '--data-dir', dataDir]);
      expect(set.code).toBe(0);
      expect(set.stdout).toContain('open WebSockets keep the old level until they reconnect');
      expect((await call(relay.url, 'GET', '/keys/validate', { key: user.key })).json.level).toBe(5);
      expect((await run(['level', 'set', user.user_id, '7', '--data-dir', dataDir])).code).toBe(2);
      expect((await run(['level', 'set', 'user_0000000000000000', '5', '--data-dir', dataDir])).code).toBe(1);
      // Something for the audit log: a moderator writing another user's data.
      await call(relay.url, 'POST', `/userdata/${admin.user_id}/USER_PUBLIC/p`, {
        key: admin.key,
        body: { value: { a: 1 } },
      });
      await call(relay.url, 'POST', `/userdata/${admin.user_id}/USER_PUBLIC/p`, {
        key: user.key,
        body: { value: { a: 2 } },
      });
    } catch (error) {
      relay.child.kill('SIGKILL');
      throw error;
    }
    // SIGTERM: stop accepting, close live sockets with 1001 (going away), exit 0.
    const ws = new WebSocket(
      `${relay.url.replace('http', 'ws')}/sync/${encodeURIComponent('PUBLIC_RW/_/lobby')}`,
    );
    await new Promise((resolve) => ws.on('open', resolve));
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    relay.child.kill('SIGTERM');
    expect(await closed).toBe(1001);
    const stopped = await relay.finished;
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toBe('');
  });

  it('level set --relay-url demotes a moderator through the running relay: open sockets follow at once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scopesync-cli-'));
    const admin = JSON.parse(
      (await run(['admin', 'create', '--data-dir', dir, '--device-name', 'ops'])).stdout,
    ) as { key: string; user_id: string };
    const relay = await start(['--port', '0', '--data-dir', dir, '--log-level', 'info'], {
      STATIC_DIR: join(dir, 'no-web-app'),
    });
    const ws: WebSocket[] = [];
    let owner = { key: '', user_id: '' };
    try {
      const register = async (name: string) =>
        (await call(relay.url, 'POST', '/keys', { body: { device_name: name } })).json as {
          key: string;
          user_id: string;
        };
      owner = await register('owner');
      const mod = await register('mod');
      const withKey = { SCOPESYNC_ADMIN_KEY: admin.key };
      const promoted = await run(
        ['level', 'set', mod.user_id, 'moderator', '--relay-url', relay.url],
        withKey,
      );
      expect(promoted.code).toBe(0);
      expect(promoted.stdout).toContain(`${mod.user_id} is now level 5`);
      const name = `USER_PUBLIC/${owner.user_id}/profile`;
      expect(
        (
          await call(relay.url, 'POST', `/userdata/${owner.user_id}/USER_PUBLIC/profile`, {
            key: owner.key,
            body: { value: { bio: 'hello' } },
          })
        ).status,
      ).toBe(200);

      // The moderator's multiplexed socket may write the owner's USER_PUBLIC profile…
      const socket = new WebSocket(`${relay.url.replace('http', 'ws')}/sync`, {
        headers: { 'x-api-key': mod.key },
      });
      ws.push(socket);
      const access: string[] = [];
      socket.on('message', (data: Buffer) => {
        const { message } = decodeMuxFrame(new Uint8Array(data));
        if (message.type === 'permission') access.push(message.access);
      });
      await new Promise((resolve) => socket.on('open', resolve));
      socket.send(encodeMuxFrame(name, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }));
      await vi.waitFor(() => expect(access).toEqual(['read-write']));

      // …until an admin demotes them through the relay: the open socket is told at once.
      const refused = await run([
        'level',
        'set',
        mod.user_id,
        'user',
        '--relay-url',
        relay.url,
        '--key',
        owner.key,
      ]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('answered 403');
      expect((await run(['level', 'set', mod.user_id, 'user', '--relay-url', relay.url])).code).toBe(2);
      const missing = await run(
        ['level', 'set', 'user_0000000000000000', 'user', '--relay-url', relay.url],
        withKey,
      );
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('answered 404');
      expect(access).toEqual(['read-write']);

      const demoted = await run(['level', 'set', mod.user_id, 'user', '--relay-url', relay.url], withKey);
      expect(demoted.code).toBe(0);
      await vi.waitFor(() => expect(access).toEqual(['read-write', 'read']));
      expect((await call(relay.url, 'GET', '/keys/validate', { key: mod.key })).json.level).toBe(1);
      const audit = await call(relay.url, 'GET', `/audit?target=${mod.user_id}`, { key: admin.key });
      expect(
        (audit.json.entries as { action: string; accessor: string; result: string }[])
          .filter((e) => e.action === 'set-level')
          .map((e) => [e.accessor, e.result]),
      ).toEqual([
        [admin.user_id, 'ok'],
        [owner.user_id, 'denied'],
        [admin.user_id, 'ok'],
      ]);
      socket.close();
    } finally {
      for (const socket of ws) socket.terminate();
      relay.child.kill('SIGTERM');
    }
    const stopped = await relay.finished;
    expect(stopped.code).toBe(0);
    // --log-level info: one JSON line per request and per socket, and never a key.
    const lines = stopped.stderr
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'info',
        message: 'http request',
        method: 'PUT',
        route: '/users/:id/level',
        status: 204,
        caller: admin.user_id,
      }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'notice',
        message: 'http request',
        route: '/users/:id/level',
        status: 403,
        denied: true,
        caller: owner.user_id,
      }),
    );
    expect(lines).toContainEqual(expect.objectContaining({ message: 'socket opened', endpoint: 'mux' }));
    expect(lines).toContainEqual(expect.objectContaining({ message: 'socket closed', endpoint: 'mux' }));
    expect(stopped.stderr).not.toContain(admin.key);
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies the audit chain and names an edited entry', async () => {
    const ok = await run(['audit', 'verify', '--data-dir', dataDir]);
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toMatch(/^ok [1-9]\d* entries \(anchored at seq [1-9]\d*, [^)]*\)$/);

    const db = new Database(join(dataDir, 'relay.sqlite'));
    const row = db.prepare('SELECT seq, id FROM audit ORDER BY seq LIMIT 1').get() as {
      seq: number;
      id: string;
    };
    db.prepare("UPDATE audit SET result = 'ok', reason = 'nothing to see' WHERE seq = ?").run(row.seq);
    db.close();
    const broken = await run(['audit', 'verify', '--data-dir', dataDir]);
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toContain(`entry ${row.seq}`);
    expect(broken.stderr).toContain(row.id);
  });

  it('reports a deleted entry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scopesync-cli-'));
    try {
      const admin = JSON.parse(
        (await run(['admin', 'create', '--data-dir', dir, '--device-name', 'x'])).stdout,
      ) as { key: string };
      const relay = await start(['--port', '0'], { DATA_DIR: dir, PORT: '1' });
      for (let i = 0; i < 3; i++) await call(relay.url, 'GET', `/blob/missing-${i}`, { key: admin.key });
      relay.child.kill('SIGINT');
      expect((await relay.finished).code).toBe(0);
      const db = new Database(join(dir, 'relay.sqlite'));
      db.prepare('DELETE FROM audit WHERE seq = 2').run();
      db.close();
      const broken = await run(['audit', 'verify', '--data-dir', dir]);
      expect(broken.code).toBe(1);
      expect(broken.stderr).toMatch(/entry 2 is missing/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('explains its usage', async () => {
    const bad = await run(['launch']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe(
      'scopesync-relay: unknown command: launch (scopesync-relay --help lists commands and settings)',
    );
    expect((await run(['admin', 'create', '--data-dir', dataDir])).code).toBe(2);
    expect((await run(['audit', 'verify', '--data-dir', join(dataDir, 'nothing-here')])).code).toBe(1);
    expect((await run([])).code).toBe(2);
  });

  it('lists every setting in --help with its flag, environment variable and default', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(SETTINGS.length).toBeGreaterThanOrEqual(20);
    for (const s of SETTINGS) {
      expect(help.stdout).toContain(`--${s.flag}`);
      expect(help.stdout).toContain(`(${s.env}`);
      expect(help.stdout).toContain(`default ${s.shownDefault})`);
    }
    expect(help.stdout).toContain('scopesync-relay backup --out DIR');
    expect(help.stdout).toContain('scopesync-relay restore --from DIR');
  });

  it.each([
    { args: ['--port', 'abc'], env: {}, says: '--port must be a whole number 0–65535, got "abc"' },
    { args: ['--port', '70000'], env: {}, says: '--port must be a whole number 0–65535' },
    { args: ['--max-body-bytes=-5'], env: {}, says: '--max-body-bytes must be a whole number ≥ 1, got "-5"' },
    { args: ['--max-frame-bytes', '-5'], env: {}, says: '--max-frame-bytes needs a value' },
    { args: ['--compact-after', '1'], env: {}, says: '--compact-after must be a whole number ≥ 2' },
    { args: ['--bogus'], env: {}, says: 'unknown option --bogus' },
    { args: ['--example-mod=yes'], env: {}, says: '--example-mod takes no value' },
    { args: [], env: { PORT: 'eighty' }, says: 'PORT must be a whole number 0–65535, got "eighty"' },
    { args: [], env: { SCOPESYNC_RATE_LIMIT: 'maybe' }, says: 'SCOPESYNC_RATE_LIMIT must be on or off' },
    {
      args: [],
      env: { SCOPESYNC_DOC_IDLE_MS: '1.5' },
      says: 'SCOPESYNC_DOC_IDLE_MS must be a whole number ≥ 0',
    },
  ])('refuses $args $env in one line with exit code 2', async ({ args, env, says }) => {
    const refused = await run(['start', '--data-dir', join(dataDir, 'never'), ...args], env);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    const lines = refused.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(says);
  });

  it('applies settings from flags and variables, the flag winning', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scopesync-cli-'));
    // The variable allows big bodies, the flag does not: the flag wins. The rate limit comes
    // from variables only: a burst of 3, then one request a second.
    const relay = await start(['--port', '0', '--data-dir', dir, '--max-body-bytes', '200'], {
      SCOPESYNC_MAX_BODY_BYTES: '1000000',
      SCOPESYNC_RATE_LIMIT_BURST: '3',
      SCOPESYNC_RATE_LIMIT_PER_SECOND: '1',
      STATIC_DIR: join(dir, 'no-web-app'),
    });
    try {
      const big = await call(relay.url, 'POST', '/keys', { body: { device_name: 'x'.repeat(300) } });
      expect(big.status).toBe(413);
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await call(relay.url, 'GET', '/keys/validate')).status);
      expect(statuses.slice(0, 2)).not.toContain(429);
      expect(statuses[3]).toBe(429);
    } finally {
      relay.child.kill('SIGTERM');
      await relay.finished;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
