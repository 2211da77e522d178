import { createClient, memoryClientStore, type SyncClient } from '@scopesync/client';
import { seededRandom } from '@scopesync/testing';
import { afterEach, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import type * as Y from 'yjs';
import { ChaosProxy } from './chaos/chaos-proxy.ts';
import { startTestRelay } from './support/start-test-relay.ts';

// Regression test from the chaos suite: a connection whose path goes silent without a FIN or
// RST (half-open TCP) must not leave the client "online" forever with its edits unacked. A
// browser cannot see the relay's WebSocket pings, so the client pings the relay itself and
// reconnects when nothing comes back.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const text = (doc: Y.Doc): string => doc.getText('t').toString();

it('a client whose connection went silent reconnects and delivers the edit made meanwhile', async () => {
  // The relay's own heartbeat stays out of the way: only the client can notice the freeze.
  const relay = await startTestRelay({ pingIntervalMs: 600_000, rateLimit: false });
  cleanups.push(() => relay.close());
  const proxy = new ChaosProxy(() => [new URL(relay.url).host], seededRandom(7));
  const proxyUrl = await proxy.listen();
  cleanups.push(() => proxy.close());

  const open = async (url: string): Promise<SyncClient> => {
    const client = await createClient({
      url,
      WebSocket,
      store: memoryClientStore(),
      backoff: { initialMs: 20, maxMs: 200 },
      liveness: { idleMs: 200, timeoutMs: 1000 },
    });
    cleanups.push(() => client.close());
    return client;
  };
  const writer = await open(proxyUrl);
  const statuses: string[] = [];
  writer.on('status', (status) => statuses.push(status));
  const name = 'PUBLIC_RW/_/liveness';
  const pad = writer.doc(name);
  await pad.whenSynced;
  await pad.transact((d) => d.getText('t').insert(0, 'before '));
  await pad.whenAcked();

  // A live relay answers every ping: several idle periods pass and the client stays online.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  expect(statuses).not.toContain('connecting');

  // Nothing passes either way and neither side is told; the relay keeps its end open.
  expect(proxy.freeze(1, 120_000)).toBe(1);
  await pad.transact((d) => d.getText('t').insert(d.getText('t').length, 'during the freeze'));
  expect(pad.pending).toBeGreaterThan(0);

  // The client gives up on the silent socket and comes back through the proxy on a new one
  // (the frozen one is still frozen: the relay never learnt it died).
  await vi.waitFor(() => expect(statuses).toContain('connecting'), { timeout: 20_000, interval: 50 });
  await pad.whenAcked();
  expect(writer.status).toBe('online');
  expect(proxy.stats.halfOpenDetected).toBe(0);

  // What a user notices: another device, straight on the relay, sees the edit.
  const reader = await open(relay.url);
  const seen = reader.doc(name);
  await vi.waitFor(() => expect(text(seen.doc)).toBe('before during the freeze'), { timeout: 20_000 });
});
