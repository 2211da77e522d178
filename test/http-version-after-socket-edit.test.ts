import { type AppendItem, MemoryDocStore } from '@scopesync/core';
import { MemoryRelayStore } from '@scopesync/relay';
import { afterEach, expect, it } from 'vitest';
import { startTestRelay } from './support/start-test-relay.ts';
import { openStockClient, synced } from './support/stock-clients.ts';

// Found by a clean-clone CI run (`http-live.test.ts`, "reads over HTTP what a WebSocket client
// wrote"): the relay applies a socket's edit, and shows it, before the edit commits. An HTTP
// read in between returned the new value with the version from before it, so a write
// If-Match that version would be refused although its writer had read the latest value. The
// read now waits for the document's queued commits, so the version it returns covers the value.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A document store whose commits take `delayMs` (a slow disk or a distant database). */
class SlowCommitDocStore extends MemoryDocStore {
  constructor(private readonly delayMs: number) {
    super();
  }

  override async appendBatch(items: readonly AppendItem[]): Promise<number[]> {
    await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return super.appendBatch(items);
  }
}

it('an HTTP read of a value a socket just changed returns the version that holds the change', async () => {
  const t = await startTestRelay({
    stores: { relayStore: new MemoryRelayStore(), docStore: new SlowCommitDocStore(300) },
    rateLimit: false,
    log: () => undefined,
  });
  cleanups.push(() => t.close());
  const alice = await t.user('alice');
  const name = 'PUBLIC_RW/_/versioned-notes';

  await t.api('POST', '/userdata/_/PUBLIC_RW/versioned-notes', { body: { value: { a: 1 } } });
  const before = (await t.api('GET', '/userdata/_/PUBLIC_RW/versioned-notes')).json;
  expect(before.value).toEqual({ a: 1 });

  const { doc, provider } = openStockClient(t.wsUrl, name, alice.key, cleanups);
  await synced(provider);
  doc.getMap('data').set('b', 2);
  // The relay has applied the edit long before its 300 ms commit ends.
  await new Promise((resolve) => setTimeout(resolve, 50));

  const after = (await t.api('GET', '/userdata/_/PUBLIC_RW/versioned-notes')).json;
  expect(after.value).toEqual({ a: 1, b: 2 });
  expect(after.version).toBeGreaterThan(before.version);
}, 20_000);
