import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocName } from '@scopesync/core';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openMux, servedItems, streamAckedWrites } from './support/acked-writes.ts';
import { call } from './support/http-client.ts';
import { listeningUrl, runCli, spawnCli } from './support/relay-cli.ts';

// `scopesync-relay backup` while a relay (its own process) takes writes, then `restore` into a
// fresh data dir: a relay started there serves every write acknowledged before the backup began.

let work: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'scopesync-backup-'));
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await rm(work, { recursive: true, force: true });
});

async function startRelay(dataDir: string) {
  const cli = spawnCli(['start', '--port', '0', '--data-dir', dataDir], {
    STATIC_DIR: join(work, 'no-web-app'),
  });
  children.add(cli.child);
  void cli.finished.then(() => children.delete(cli.child));
  const url = await listeningUrl(cli);
  const stop = async (): Promise<void> => {
    cli.child.kill('SIGTERM');
    expect((await cli.finished).code).toBe(0);
  };
  return { url, stop };
}

describe('backup and restore', () => {
  it('restores, from a backup taken under write load, every write acked before it began', async () => {
    const live = join(work, 'live');
    const relay = await startRelay(live);
    const registered = await call(relay.url, 'POST', '/keys', { body: { device_name: 'writer' } });
    const { key, user_id: userId } = registered.json as { key: string; user_id: string };
    const name = parseDocName(`USER_PUBLIC/${userId}/log`).name;
    const mux = await openMux(relay.url, key);
    mux.send(name, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    expect(await mux.next('permission')).toMatchObject({ access: 'read-write' });

    // Document writes (docs.sqlite): tracked updates, each appending its number, acked one by one.
    const writes = streamAckedWrites(mux, name, { nextTick: (fn) => setTimeout(fn, 1) });
    const { acked } = writes;
    let writing = true;
    // Relay-store writes (relay.sqlite): registrations, each acked by its 200.
    const users: string[] = [];
    const registering = (async () => {
      while (writing) {
        const answer = await call(relay.url, 'POST', '/keys', { body: { device_name: `d${users.length}` } });
        if (answer.status === 200) users.push((answer.json as { key: string }).key);
      }
    })();
    await mux.until(() => acked.size >= 300 && users.length >= 20);

    const ackedBefore = new Set(acked);
    const usersBefore = [...users];
    const out = join(work, 'backup');
    const backup = await runCli(['backup', '--data-dir', live, '--out', out]);
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    // Writes went on during the backup.
    expect(acked.size).toBeGreaterThan(ackedBefore.size);
    writing = false;
    writes.stop();
    await registering;
    mux.ws.close();
    await relay.stop();

    // The audit key and anchor come along: the restored log is verified with them.
    expect((await readdir(out)).sort()).toEqual([
      'audit-anchor.json',
      'audit.key',
      'docs.sqlite',
      'manifest.json',
      'relay.sqlite',
    ]);
    const restoredDir = join(work, 'restored');
    const restore = await runCli(['restore', '--from', out, '--data-dir', restoredDir]);
    expect(restore.stderr).toBe('');
    expect(restore.code).toBe(0);

    const restored = await startRelay(restoredDir);
    try {
      const present = await servedItems(restored.url, key, name);
      expect([...ackedBefore].filter((ref) => !present.has(ref))).toEqual([]);
      for (const userKey of usersBefore) {
        expect((await call(restored.url, 'GET', '/keys/validate', { key: userKey })).status).toBe(200);
      }
      expect((await runCli(['audit', 'verify', '--data-dir', restoredDir])).code).toBe(0);

      // A running relay holds the files: restore refuses, even with --force.
      const held = await runCli(['restore', '--from', out, '--data-dir', restoredDir, '--force']);
      expect(held.code).toBe(1);
      expect(held.stderr).toContain('is in use');
    } finally {
      await restored.stop();
    }
  });

  it('refuses a non-empty target without --force, an incomplete backup, and a damaged one', async () => {
    const source = join(work, 'small');
    expect((await runCli(['admin', 'create', '--data-dir', source, '--device-name', 'a'])).code).toBe(0);
    const out = join(work, 'small-backup');
    expect((await runCli(['backup', '--data-dir', source, '--out', out])).code).toBe(0);
    // No relay ran there yet, so there is no docs.sqlite to back up.
    expect((await readdir(out)).sort()).toEqual(['manifest.json', 'relay.sqlite']);
    // Backing up into a directory that holds something is refused.
    expect((await runCli(['backup', '--data-dir', source, '--out', out])).code).toBe(1);

    const target = join(work, 'small-target');
    await runCli(['admin', 'create', '--data-dir', target, '--device-name', 'b']);
    const refused = await runCli(['restore', '--from', out, '--data-dir', target]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('pass --force');
    expect((await runCli(['restore', '--from', out, '--data-dir', target, '--force'])).code).toBe(0);
    // The target now holds the source's admin only.
    const db = new Database(join(target, 'relay.sqlite'), { readonly: true });
    expect(db.prepare('SELECT device_name FROM users').pluck().all()).toEqual(['a']);
    db.close();

    expect((await runCli(['restore', '--from', source, '--data-dir', join(work, 'x')])).stderr).toContain(
      'not a complete backup',
    );
    await writeFile(join(out, 'relay.sqlite'), 'not what was backed up');
    const damaged = await runCli(['restore', '--from', out, '--data-dir', join(work, 'y')]);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toContain('damaged');
    expect((await runCli(['backup', '--data-dir', source])).code).toBe(2);
  });
});
