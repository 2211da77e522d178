import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MemoryDocStore } from '@scopesync/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AccessControl } from '../access-control.ts';
import { AuditLog } from '../audit-log.ts';
import { DocHub } from '../documents/doc-hub.ts';
import { LocalEventBus } from '../events/local-event-bus.ts';
import { KeyChallenges } from '../key-proof.ts';
import { KeyedMutex } from '../keyed-mutex.ts';
import { MemoryRelayStore } from '../memory-relay-store.ts';
import { Metrics } from '../metrics.ts';
import { HttpApi } from './http-api.ts';

// The HttpApi alone, over memory stores: routing, errors and the refresh hook. The full
// contract runs against a real relay in test/http-contract.test.ts.

describe('HttpApi', () => {
  let server: Server;
  let hub: DocHub;
  let base: string;
  let refreshed: string[];

  beforeEach(async () => {
    const store = new MemoryRelayStore();
    const metrics = new Metrics();
    const audit = new AuditLog({ store });
    const bus = new LocalEventBus();
    hub = new DocHub({ store: new MemoryDocStore(), bus, metrics, log: () => undefined });
    refreshed = [];
    const api = new HttpApi({
      services: {
        access: new AccessControl({ store, audit, metrics }),
        store,
        audit,
        hub,
        bus,
        mutex: new KeyedMutex(),
        refreshAccess: async (name) => {
          refreshed.push(name);
        },
        closeKeySockets: () => undefined,
        challenges: new KeyChallenges(),
        maxBodyBytes: 1024,
        now: Date.now,
      },
      metrics,
      rateLimit: false,
      log: () => undefined,
    });
    server = createServer((req, res) => api.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    await new Promise((resolve) => server.close(resolve));
    await hub.close();
  });

  const json = async (method: string, path: string, body?: unknown, key?: string) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: key ? { 'x-api-key': key } : {},
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };

  it('writes userdata into the document the sync layer serves', async () => {
    const { body: me } = await json('POST', '/keys', { device_name: 'd' });
    const path = `/userdata/${me.user_id}/USER_PUBLIC/profile`;
    expect((await json('POST', path, { value: { name: 'Ada' } }, me.key)).status).toBe(200);
    const live = await hub.read(`USER_PUBLIC/${me.user_id}/profile` as never, (doc) =>
      doc.getMap('data').toJSON(),
    );
    expect(live).toEqual({ name: 'Ada' });
    // Creating re-checks subscriptions waiting for the object.
    expect(refreshed).toEqual([`USER_PUBLIC/${me.user_id}/profile`]);
    refreshed.length = 0;
    // Narrowing the flags of an existing object re-checks live subscriptions.
    await json('POST', path, { value: { name: 'Ada' }, read: 1 }, me.key);
    expect(refreshed).toEqual([`USER_PUBLIC/${me.user_id}/profile`]);
  });

  it('answers every error as {error, message} with the mapped status', async () => {
    expect(await json('GET', '/nope')).toMatchObject({ status: 404, body: { error: 'NotFound' } });
    expect(await json('POST', '/keys', 'x'.repeat(2000))).toMatchObject({
      status: 413,
      body: { error: 'TooLarge' },
    });
    expect(await json('POST', '/keys', undefined)).toMatchObject({
      status: 400,
      body: { error: 'BadRequest' },
    });
    expect(await json('GET', '/userdata/_/PUBLIC_RW/%ZZ')).toMatchObject({
      status: 400,
      body: { error: 'BadRequest' },
    });
    expect(await json('DELETE', '/health')).toMatchObject({ status: 405 });
  });
});
