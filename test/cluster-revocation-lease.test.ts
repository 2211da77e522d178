import { randomUUID } from 'node:crypto';
import { createClient } from '@redis/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLUSTER_REDIS_URL,
  type ClusterRelay,
  type RelayCluster,
  startCluster,
} from './support/relay-cluster.ts';
import { MuxSocket, update } from './support/sync-sockets.ts';

// Chaos finding 13: a revocation answered on relay A while Redis could not carry it, and a
// write made after that answer reached the sharee's socket on relay B, which had not heard of
// the revocation. With the delivery lease (docs/scale-out.md, "Revocations between relays"), A
// answers only once B has heard of it or B's lease has run out, and B, without a lease, asks the
// store before it delivers. Needs PostgreSQL 15 and Redis 7 on 127.0.0.1 (.ci/run starts them).

let cluster: RelayCluster;
let a: ClusterRelay;
let b: ClusterRelay;
beforeAll(async () => {
  // No shared rate-limit buckets: they live in Redis, and the paused Redis would hold every
  // HTTP request, the revocation too, until it resumes.
  cluster = await startCluster(2, ['--rate-limit', 'off']);
  [a, b] = cluster.relays as [ClusterRelay, ClusterRelay];
}, 120_000);

afterAll(() => cluster?.close(), 60_000);

async function register(relay: ClusterRelay): Promise<{ key: string; userId: string }> {
  const answer = await relay.api('POST', '/keys', { body: { device_name: `d-${randomUUID().slice(0, 8)}` } });
  expect(answer.status).toBe(200);
  return { key: answer.json.key as string, userId: answer.json.user_id as string };
}

/** Waits until `check` holds (polling; bounded). */
async function eventually(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`not within ${ms} ms: ${what}`);
}

/** Pauses Redis's write commands (PUBLISH among them) for `ms`; Redis is shared, so briefly. */
async function pauseRedisWrites(ms: number): Promise<() => Promise<void>> {
  const admin = createClient({ url: CLUSTER_REDIS_URL });
  await admin.connect();
  await admin.sendCommand(['CLIENT', 'PAUSE', String(ms), 'WRITE']);
  return async () => {
    try {
      await admin.sendCommand(['CLIENT', 'UNPAUSE']);
    } finally {
      await admin.close();
    }
  };
}

describe('a revocation across relays while Redis is paused', () => {
  it('delivers nothing written after its 204 to the sharee on the other relay', async () => {
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
    // The sharee and the owner's writing socket both on B; the revocation goes to A.
    const watcher = await MuxSocket.open(b, sharee.key);
    const writer = await MuxSocket.open(b, owner.key);
    try {
      await watcher.prepareFence();
      expect((await watcher.subscribe(doc)).access).toBe('read');
      expect((await writer.subscribe(doc)).access).toBe('read-write');
      expect((await writer.write(doc, update('n', 'BEFORE-REVOKE'))).type).toBe('ack');
      await eventually('the sharee got the write made before the revocation', () =>
        watcher.saw('BEFORE-REVOKE'),
      );

      const resume = await pauseRedisWrites(1500);
      try {
        const revoked = await a.api('DELETE', `/share/${blob}/${sharee.userId}`, { key: owner.key });
        expect(revoked.status).toBe(204);
        // After the 204: the sharee may not read the blob any more, anywhere.
        expect((await writer.write(doc, update('n', 'AFTER-REVOKE'))).type).toBe('ack');
      } finally {
        await resume();
      }
      await eventually('the sharee lost the blob on B', () => {
        const access = watcher.lastPermission(doc)?.access;
        return access === 'none' || access === 'waiting';
      });
      await watcher.fence();
      expect(watcher.framesCarrying('AFTER-REVOKE')).toEqual([]);
    } finally {
      writer.close();
      watcher.close();
    }
  });
});
