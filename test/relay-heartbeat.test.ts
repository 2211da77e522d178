import { seededRandom } from '@scopesync/testing';
import { afterEach, expect, it, vi } from 'vitest';
import { ChaosProxy } from './chaos/chaos-proxy.ts';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';
import { DocClient } from './support/sync-sockets.ts';

// Regression test from the chaos suite: the relay's heartbeat interval is a setting
// (`pingIntervalMs`, `--ping-interval-ms`), and with it the relay drops a half-open socket —
// one whose path went silent without a FIN — on its own.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

it('a relay with a short ping interval drops a socket whose path went silent', async () => {
  const relay: TestRelay = await startTestRelay({ pingIntervalMs: 200 });
  cleanups.push(() => relay.close());
  const proxy = new ChaosProxy(() => [new URL(relay.url).host], seededRandom(1));
  const url = await proxy.listen();
  cleanups.push(() => proxy.close());
  const user = await relay.user('heartbeat');
  const client = new DocClient(
    { ...relay, wsUrl: url.replace(/^http/, 'ws') },
    'PUBLIC_RW/_/heartbeat',
    user.key,
  );
  cleanups.push(() => client.destroy());
  await client.synced();
  expect(relay.relay.syncServer.connections).toBe(1);

  // Nothing passes either way and no one is told: only the relay's pings can find out.
  expect(proxy.freeze(1, 60_000)).toBe(1);
  await vi.waitFor(() => expect(proxy.stats.halfOpenDetected).toBe(1), { timeout: 30_000, interval: 50 });
  expect(proxy.stats.halfOpenMissed).toBe(0);
});
