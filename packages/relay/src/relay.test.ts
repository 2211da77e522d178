import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSyncError } from '@scopesync/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createRelay, type Relay } from './relay.ts';

describe('createRelay', () => {
  let dataDir: string;
  let relays: Relay[];

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scopesync-relay-test-'));
    relays = [];
  });
  afterEach(async () => {
    for (const relay of relays) await relay.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const start = async (): Promise<Relay> => {
    const relay = createRelay({ port: 0, dataDir, log: () => undefined });
    relays.push(relay);
    await relay.listen();
    return relay;
  };

  it('keeps users and data in its data dir across restarts', async () => {
    const first = await start();
    const { key, userId } = await first.runtime.createUser({ deviceName: 'd' });
    const put = await fetch(`${first.url}/userdata/${userId}/USER_PUBLIC/p`, {
      method: 'POST',
      headers: { 'x-api-key': key },
      body: JSON.stringify({ value: { kept: true } }),
    });
    expect(put.status).toBe(200);
    await first.close();
    const second = await start();
    const read = await fetch(`${second.url}/userdata/${userId}/USER_PUBLIC/p`, {
      headers: { 'x-api-key': key },
    });
    expect(await read.json()).toMatchObject({ value: { kept: true }, owner: userId });
  });

  it('opens its SQLite files with the page caches it is given, and refuses one too small', () => {
    for (const sqliteCacheKiB of [{ relay: 8 }, { docs: 15 }]) {
      let refused: unknown;
      try {
        relays.push(createRelay({ port: 0, dataDir, sqliteCacheKiB, log: () => undefined }));
      } catch (error) {
        refused = error;
      }
      expect(isSyncError(refused) && refused.kind === 'BadRequest' && refused.message).toMatch(/cacheKiB/);
    }
    relays.push(
      createRelay({ port: 0, dataDir, sqliteCacheKiB: { relay: 16, docs: 16 }, log: () => undefined }),
    );
  });

  it('closes WebSockets with 1001, stops listening and is idempotent', async () => {
    const relay = await start();
    const url = relay.url;
    const ws = new WebSocket(`${url.replace('http', 'ws')}/sync/${encodeURIComponent('PUBLIC_RW/_/room')}`);
    await new Promise((resolve) => ws.on('open', resolve));
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    await Promise.all([relay.close(), relay.close()]);
    expect(await closed).toBe(1001);
    await expect(fetch(`${url}/health`)).rejects.toThrow();
    const again = await relay.listen().catch((e: unknown) => e);
    expect(isSyncError(again, 'Unavailable')).toBe(true);
  });

  it('says where it listens only once it does', async () => {
    const relay = createRelay({ port: 0, log: () => undefined });
    relays.push(relay);
    expect(() => relay.url).toThrow(/not listening/);
    const { port, url } = await relay.listen();
    expect(url).toBe(`http://127.0.0.1:${port}`);
    expect(relay.url).toBe(url);
  });
});
