import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

  it('verifies the audit chain and names an edited entry', async () => {
    const ok = await run(['audit', 'verify', '--data-dir', dataDir]);
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toMatch(/^ok [1-9]\d* entries$/);

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
    expect(bad.stderr).toContain('scopesync-relay start');
    expect((await run(['admin', 'create', '--data-dir', dataDir])).code).toBe(2);
    expect((await run(['audit', 'verify', '--data-dir', join(dataDir, 'nothing-here')])).code).toBe(1);
    expect((await run(['--help'])).code).toBe(0);
  });
});
