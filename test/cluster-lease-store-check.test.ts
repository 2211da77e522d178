import { randomBytes, randomUUID } from 'node:crypto';
import { createClient } from '@redis/client';
import { KeyedMutex, MemoryDocStore } from '@scopesync/core';
import { MemoryRelayStore, RedisTransport } from '@scopesync/relay';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';
import { EMPTY_STATE_VECTOR, MuxSocket, update } from './support/sync-sockets.ts';

// The receiving half of the delivery lease (docs/scale-out.md, "Revocations between relays"):
// a relay that has had no echo of its own heartbeat for longer than the lease must not trust
// its access decisions in memory — it asks the store before it delivers. Here the narrowing
// reaches the store and no event is ever published (a publication that never got through), and
// Redis's writes are paused so relay B's lease runs out. Two relays in this process, sharing
// their stores, on the real Redis. Needs Redis 7 on 127.0.0.1.

const REDIS_URL = process.env.SCOPESYNC_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Short, so B's lease runs out well inside a brief pause of the shared Redis. */
const LEASE_MS = 200;

const relayStore = new MemoryRelayStore();
const docStore = new MemoryDocStore();
const locks = new KeyedMutex();
let a: TestRelay;
let b: TestRelay;

async function relay(prefix: string): Promise<TestRelay> {
  const transport = await RedisTransport.connect({ url: REDIS_URL, prefix });
  return startTestRelay({
    stores: { relayStore, docStore },
    rateLimit: false,
    cluster: { transport, locks, leaseMs: LEASE_MS, heartbeatMs: 20 },
  });
}

beforeAll(async () => {
  const prefix = `lease-${randomBytes(5).toString('hex')}`;
  a = await relay(prefix);
  b = await relay(prefix);
}, 60_000);

afterAll(async () => {
  await b?.close();
  await a?.close();
});

async function register(on: TestRelay): Promise<{ key: string; userId: string }> {
  const answer = await on.api('POST', '/keys', { body: { device_name: `d-${randomUUID().slice(0, 8)}` } });
  expect(answer.status).toBe(200);
  return { key: answer.json.key as string, userId: answer.json.user_id as string };
}

describe('a relay whose delivery lease ran out', () => {
  it('checks the store before delivering, and delivers nothing to a sharee whose share is gone', async () => {
    const owner = await register(a);
    const sharee = await register(a);
    const blob = `lease-${randomUUID()}`;
    const doc = `blob/${blob}`;
    expect((await a.api('PUT', `/blob/${blob}`, { key: owner.key, body: 'v1' })).status).toBe(200);
    const shared = await a.api('POST', `/share/${blob}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_only' },
    });
    expect(shared.status).toBe(200);
    const watcher = await MuxSocket.open(b, sharee.key);
    const writer = await MuxSocket.open(b, owner.key);
    const admin = createClient({ url: REDIS_URL });
    await admin.connect();
    try {
      await watcher.prepareFence();
      expect((await watcher.subscribe(doc)).access).toBe('read');
      expect((await writer.subscribe(doc)).access).toBe('read-write');
      expect((await writer.write(doc, update('n', 'BEFORE'))).type).toBe('ack');
      await watcher.waitFor(
        'the write made before',
        (f) => f.doc === doc && f.message.type === 'sync-update',
      );

      await admin.sendCommand(['CLIENT', 'PAUSE', '2000', 'WRITE']);
      try {
        // No heartbeat published from now on comes back before the pause ends, so once the
        // lease has passed B's lease has run out (a wait, not an assertion about speed).
        await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_MS));
        // Checked against the store and delivered: the share is still there.
        const from = watcher.frames.length;
        expect((await writer.write(doc, update('n', 'MIDDLE'))).type).toBe('ack');
        await watcher.waitFor(
          'the write made while B had no lease',
          (f) => f.doc === doc && f.message.type === 'sync-update',
          from,
        );
        // Narrowed in the store only: B hears of it from nobody. The check made for MIDDLE
        // started before it, so it must not stand for the next write.
        expect(await relayStore.deleteShare(blob, sharee.userId)).toBe(true);
        expect((await writer.write(doc, update('n', 'AFTER'))).type).toBe('ack');
        const lost = await watcher.waitFor(
          'the sharee losing the blob',
          (f) => f.doc === doc && f.message.type === 'permission' && f.message.access === 'none',
        );
        expect(lost.message.type).toBe('permission');
      } finally {
        await admin.sendCommand(['CLIENT', 'UNPAUSE']);
      }
      await watcher.fence();
      expect(watcher.framesCarrying('AFTER')).toEqual([]);
    } finally {
      await admin.close();
      writer.close();
      watcher.close();
    }
  });

  it('answers a SyncStep1 only after checking the store, so a sharee whose share is gone gets nothing', async () => {
    const owner = await register(a);
    const sharee = await register(a);
    const blob = `lease-${randomUUID()}`;
    const doc = `blob/${blob}`;
    expect((await a.api('PUT', `/blob/${blob}`, { key: owner.key, body: 'v1' })).status).toBe(200);
    const shared = await a.api('POST', `/share/${blob}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_only' },
    });
    expect(shared.status).toBe(200);
    const watcher = await MuxSocket.open(b, sharee.key);
    const admin = createClient({ url: REDIS_URL });
    await admin.connect();
    try {
      await watcher.prepareFence();
      expect((await watcher.subscribe(doc)).access).toBe('read');
      await admin.sendCommand(['CLIENT', 'PAUSE', '2000', 'WRITE']);
      let from: number;
      try {
        await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_MS));
        expect(await relayStore.deleteShare(blob, sharee.userId)).toBe(true);
        from = watcher.frames.length;
        watcher.send(doc, { type: 'sync-step1', stateVector: EMPTY_STATE_VECTOR });
        await watcher.waitFor(
          'the sharee losing the blob',
          (f) => f.doc === doc && f.message.type === 'permission' && f.message.access === 'none',
          from,
        );
      } finally {
        await admin.sendCommand(['CLIENT', 'UNPAUSE']);
      }
      await watcher.fence();
      const answers = watcher.frames
        .slice(from)
        .filter((f) => f.doc === doc && f.message.type === 'sync-step2');
      expect(answers).toEqual([]);
    } finally {
      await admin.close();
      watcher.close();
    }
  });

  it('closes the socket (to reconnect and sync again) when the store cannot answer the check, and sends nothing', async () => {
    const owner = await register(a);
    const sharee = await register(a);
    const blob = `lease-${randomUUID()}`;
    const doc = `blob/${blob}`;
    expect((await a.api('PUT', `/blob/${blob}`, { key: owner.key, body: 'v1' })).status).toBe(200);
    const shared = await a.api('POST', `/share/${blob}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_only' },
    });
    expect(shared.status).toBe(200);
    const watcher = await MuxSocket.open(b, sharee.key);
    const writer = await MuxSocket.open(b, owner.key);
    const admin = createClient({ url: REDIS_URL });
    await admin.connect();
    const getObject = relayStore.getObject.bind(relayStore);
    try {
      expect((await watcher.subscribe(doc)).access).toBe('read');
      expect((await writer.subscribe(doc)).access).toBe('read-write');
      // Its first write is authorised now: later ones need no store.
      expect((await writer.write(doc, update('n', 'FIRST'))).type).toBe('ack');
      await watcher.waitFor('the first write', (f) => f.doc === doc && f.message.type === 'sync-update');
      await admin.sendCommand(['CLIENT', 'PAUSE', '2000', 'WRITE']);
      try {
        await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_MS));
        // The store fails (a killed connection): the check before the delivery cannot be made.
        relayStore.getObject = () => Promise.reject(new Error('connection terminated'));
        // The writer's socket is in the room too: it closes as well, maybe before its ack.
        void writer.write(doc, update('n', 'UNCHECKED')).catch(() => undefined);
        const closed = await Promise.race([
          watcher.closed,
          new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000)),
        ]);
        expect(closed?.code).toBe(4503);
      } finally {
        relayStore.getObject = getObject;
        await admin.sendCommand(['CLIENT', 'UNPAUSE']);
      }
      expect(watcher.framesCarrying('UNCHECKED')).toEqual([]);
      // Not told it lost the blob: it may still read it, and gets it again when it reconnects.
      expect(watcher.lastPermission(doc)?.access).toBe('read');
    } finally {
      relayStore.getObject = getObject;
      await admin.close();
      writer.close();
      watcher.close();
    }
  });
});
