import { randomBytes } from 'node:crypto';
import { createClient } from '@redis/client';
import { parseDocName } from '@scopesync/core';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalEventBus } from '../events/local-event-bus.ts';
import type { RelayEvent } from '../events/relay-events.ts';
import { ClusterLink } from './cluster-link.ts';
import { DeliveryLease } from './delivery-lease.ts';
import { NarrowingFence } from './narrowing-fence.ts';
import { RedisTransport } from './redis-transport.ts';

// The delivery lease kept by heartbeats on the real Redis. Needs Redis 7 on 127.0.0.1:6379;
// each test uses its own channel prefix and kills only its own connections.
const REDIS_URL = process.env.SCOPESYNC_REDIS_URL ?? 'redis://127.0.0.1:6379';
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** A link with a lease on a fresh transport; counts the socket checks it asks for. */
async function linked(prefix: string, relayId: string) {
  const transport = await RedisTransport.connect({ url: REDIS_URL, prefix, relayId });
  const bus = new LocalEventBus();
  const lease = new DeliveryLease({ leaseMs: 300 });
  const fence = new NarrowingFence({ leaseMs: 300 });
  const received: RelayEvent[] = [];
  bus.on('access-changed', (event) => {
    received.push(event);
  });
  const checks = { started: 0 };
  const link = new ClusterLink({
    bus,
    transport,
    docEvents: () => undefined,
    catchUp: () => undefined,
    log: () => undefined,
    lease,
    fence,
    revalidate: async () => {
      checks.started++;
    },
    heartbeatMs: 30,
  });
  closers.push(async () => {
    await link.close();
    await bus.close();
  });
  return { bus, lease, fence, received, checks };
}

/** Waits until `check` holds (polling; bounded). */
async function eventually(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`not within ${ms} ms: ${what}`);
}

describe('ClusterLink with a delivery lease', () => {
  it('holds the lease while its heartbeats come back; after its subscription is killed, only once the sockets were checked', async () => {
    const prefix = `lease-${randomBytes(6).toString('hex')}`;
    const b = await linked(prefix, `b-${prefix}`);
    await eventually('the first echo', () => b.lease.fresh());
    expect(b.checks.started).toBe(0);
    const admin = createClient({ url: REDIS_URL });
    await admin.connect();
    try {
      const list = String(await admin.sendCommand(['CLIENT', 'LIST', 'TYPE', 'pubsub']));
      const line = list.split('\n').find((l) => l.includes(`name=scopesync-${prefix}-b-${prefix}-sub`));
      const id = /\bid=(\d+)/.exec(line ?? '')?.[1];
      if (id === undefined) throw new Error('the subscriber connection is not in CLIENT LIST');
      await admin.sendCommand(['CLIENT', 'KILL', 'ID', id]);
    } finally {
      await admin.close();
    }
    await eventually('the lease lost', () => !b.lease.fresh());
    await eventually('the lease back', () => b.lease.fresh());
    expect(b.checks.started).toBe(1);
  });

  it('publishes a narrowing, and settles once Redis took it and the lease has passed since', async () => {
    const prefix = `lease-${randomBytes(6).toString('hex')}`;
    const a = await linked(prefix, 'a');
    const b = await linked(prefix, 'b');
    const name = parseDocName('blob/lease-test').name;
    const published = performance.now();
    await a.bus.publish({ type: 'access-changed', name, cause: 'share' });
    await a.fence.settle();
    // A lower bound, what the guarantee rests on: not before the lease after Redis took it.
    expect(performance.now() - published).toBeGreaterThanOrEqual(300);
    // By then b has heard of it, or no longer trusts what it heard.
    expect(b.received.length === 1 || !b.lease.fresh()).toBe(true);
    await eventually('b hears of it', () => b.received.length === 1);
  });
});
