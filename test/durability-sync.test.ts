import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocName } from '@scopesync/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openMux, servedItems, streamAckedWrites } from './support/acked-writes.ts';
import { call } from './support/http-client.ts';
import { listeningUrl, spawnCli } from './support/relay-cli.ts';

// An ack means durable: stream tracked updates to a relay running as its own process on
// SQLite, SIGKILL it mid-stream (no graceful shutdown, no flush), restart it on the same data
// dir, and every update the relay acknowledged must be in the document.

let dataDir: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'scopesync-durability-'));
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await rm(dataDir, { recursive: true, force: true });
});

/** Starts `scopesync-relay start` on port 0 and resolves with its URL once it listens. */
async function startRelay(): Promise<{ child: ChildProcess; url: string; exited: Promise<unknown> }> {
  const cli = spawnCli(['start', '--port', '0', '--data-dir', dataDir], {
    STATIC_DIR: join(dataDir, 'no-web-app'),
  });
  children.add(cli.child);
  void cli.finished.then(() => children.delete(cli.child));
  return { child: cli.child, url: await listeningUrl(cli), exited: cli.finished };
}

describe('durability of acknowledged updates', () => {
  it('keeps every acked update across a SIGKILL of the relay process', async () => {
    const first = await startRelay();
    const registered = await call(first.url, 'POST', '/keys', { body: { device_name: 'durability' } });
    expect(registered.status).toBe(200);
    const { key, user_id: userId } = registered.json as { key: string; user_id: string };
    const name = parseDocName(`USER_PUBLIC/${userId}/log`).name;

    const mux = await openMux(first.url, key);
    mux.send(name, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    expect(await mux.next('permission')).toMatchObject({ access: 'read-write' });

    // Tracked updates, each appending its number, a window of 20 in flight so the kill lands
    // mid-stream; sent until the socket dies with the process.
    const { acked } = streamAckedWrites(mux, name);
    await mux.until(() => acked.size >= 200);
    first.child.kill('SIGKILL');
    await first.exited;
    await mux.closed;
    // Every ack received, including those on the wire when the process died.
    const ackedAtKill = new Set(acked);
    expect(ackedAtKill.size).toBeGreaterThanOrEqual(200);

    const second = await startRelay();
    try {
      const present = await servedItems(second.url, key, name);
      const missing = [...ackedAtKill].filter((ref) => !present.has(ref));
      expect(missing).toEqual([]);
    } finally {
      second.child.kill('SIGKILL');
      await second.exited;
    }
  });
});
