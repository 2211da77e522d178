import { randomBytes } from 'node:crypto';
import { createClient } from '@redis/client';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisTransport } from './redis-transport.ts';

// Needs Redis 7 on 127.0.0.1:6379 (see the README); each test uses its own channel prefix.
const REDIS_URL = process.env.SCOPESYNC_REDIS_URL ?? 'redis://127.0.0.1:6379';
const open: RedisTransport[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
});

async function transport(prefix: string, relayId: string): Promise<RedisTransport> {
  const t = await RedisTransport.connect({ url: REDIS_URL, prefix, relayId }).catch((error: unknown) => {
    throw new Error(
      `Redis is not reachable at ${REDIS_URL} (start it: redis-server --daemonize yes --port 6379 --save "" --appendonly no): ${String(error)}`,
    );
  });
  open.push(t);
  return t;
}

function nextMessage(t: RedisTransport): Promise<Uint8Array> {
  return new Promise((resolve) => t.onMessage(resolve));
}

describe('RedisTransport', () => {
  it('delivers a message to the other relays and not back to its sender', async () => {
    const prefix = `test-${randomBytes(6).toString('hex')}`;
    const a = await transport(prefix, 'a');
    const b = await transport(prefix, 'b');
    const own: Uint8Array[] = [];
    a.onMessage((m) => own.push(m));
    const received = nextMessage(b);
    await a.send(new Uint8Array([1, 2, 3]));
    expect([...(await received)]).toEqual([1, 2, 3]);
    // A message b sends afterwards reaches a: a's own earlier message never came back to it.
    const atA = nextMessage(a);
    await b.send(new Uint8Array([9]));
    expect([...(await atA)]).toEqual([9]);
    expect(own.map((m) => [...m])).toEqual([[9]]);
  });

  it('reports a reconnect after its subscription was killed, and delivers again', async () => {
    const prefix = `test-${randomBytes(6).toString('hex')}`;
    const a = await transport(prefix, 'a');
    const b = await transport(prefix, `b-${prefix}`);
    const reconnected = new Promise<void>((resolve) => b.onReconnect(resolve));
    const admin = createClient({ url: REDIS_URL });
    await admin.connect();
    try {
      // Only b's subscriber connection: other test files may share this Redis.
      const list = String(await admin.sendCommand(['CLIENT', 'LIST', 'TYPE', 'pubsub']));
      const line = list.split('\n').find((l) => l.includes(`name=scopesync-${prefix}-b-${prefix}-sub`));
      const id = /\bid=(\d+)/.exec(line ?? '')?.[1];
      if (id === undefined) throw new Error('the subscriber connection is not in CLIENT LIST');
      await admin.sendCommand(['CLIENT', 'KILL', 'ID', id]);
    } finally {
      await admin.close();
    }
    await reconnected;
    // Re-subscribed: the next message arrives (retry: the subscription may land just after ready).
    for (let attempt = 0; attempt < 50; attempt++) {
      const got = Promise.race([nextMessage(b), new Promise<null>((r) => setTimeout(() => r(null), 100))]);
      await a.send(new Uint8Array([7]));
      if ((await got) !== null) return;
    }
    throw new Error('no message after the reconnect');
  });

  it('fails fast with one clear line when Redis cannot be reached', async () => {
    await expect(
      RedisTransport.connect({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 2000 }),
    ).rejects.toMatchObject({ kind: 'Unavailable', message: expect.stringContaining('cannot reach Redis') });
  });
});
