import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KeyedMutex, MemoryDocStore } from '@scopesync/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AccessControl } from '../access-control.ts';
import { AuditLog } from '../audit-log.ts';
import { DocHub } from '../documents/doc-hub.ts';
import { LocalEventBus } from '../events/local-event-bus.ts';
import { KeyChallenges } from '../key-proof.ts';
import { MemoryRelayStore } from '../memory-relay-store.ts';
import { Metrics } from '../metrics.ts';
import { AccountService } from '../services/account-service.ts';
import { BlobService } from '../services/blob-service.ts';
import { DeviceListService } from '../services/device-list-service.ts';
import { ObjectService } from '../services/object-service.ts';
import { ShareService } from '../services/share-service.ts';
import { HttpApi } from './http-api.ts';

// The HttpApi alone, over memory stores and the services: routing, errors and the access events. The full
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
    // What subscriptions would see, in order: an access change must come before the content.
    bus.on('access-changed', (event) => {
      refreshed.push(event.name);
    });
    bus.on('doc-updated', (event) => {
      refreshed.push(`update ${event.name}`);
    });
    const access = new AccessControl({ store, audit, metrics });
    const core = { access, store, hub, bus, locks: new KeyedMutex(), now: Date.now };
    const objects = new ObjectService(core);
    const accounts = new AccountService(core);
    const api = new HttpApi({
      services: {
        ...core,
        audit,
        objects,
        blobs: new BlobService({ ...core, objects }),
        shares: new ShareService({ ...core, objects }),
        accounts,
        devices: new DeviceListService({ store, accounts, audit, now: Date.now }),
        challenges: new KeyChallenges(),
        maxBodyBytes: 1024,
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
    // Creating re-decides subscriptions waiting for the object, before its content goes out.
    const name = `USER_PUBLIC/${me.user_id}/profile`;
    expect(refreshed).toEqual([name, `update ${name}`]);
    refreshed.length = 0;
    // Narrowing the flags of an existing object re-decides live subscriptions before the write.
    await json('POST', path, { value: { name: 'Eve' }, read: 1 }, me.key);
    expect(refreshed).toEqual([name, `update ${name}`]);
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
