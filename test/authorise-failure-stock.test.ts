import { MemoryDocStore, type ObjectRecord, SyncError } from '@scopesync/core';
import { MemoryRelayStore } from '@scopesync/relay';
import { afterEach, expect, it } from 'vitest';
import { startTestRelay } from './support/start-test-relay.ts';
import { openStockClient, synced, until } from './support/stock-clients.ts';

// Regression test from the chaos soak (a stock client 7 items ahead of its relay, PostgreSQL
// stopped): the first write of a socket is authorised against the store. When the store (or
// the cluster's lock) cannot answer, the relay used to reply with y-protocols' permission-denied
// and drop the update; a stock y-websocket client takes that as final and never sends the
// update again, so the relay and every later reader missed it for as long as the socket lived.
// A write the relay could not decide now closes the socket (4503): the client reconnects and
// its SyncStep2 carries the update.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A relay store whose next read of one object fails (a dropped database connection). */
class FailingOnceRelayStore extends MemoryRelayStore {
  #armed: string | null = null;
  /** How many reads were made to fail. */
  failures = 0;

  /** Makes the next read of the object `name` fail with Unavailable. */
  failNextReadOf(name: string): void {
    this.#armed = name;
  }

  override async getObject(name: string): Promise<ObjectRecord | null> {
    if (this.#armed === name) {
      this.#armed = null;
      this.failures += 1;
      throw new SyncError('Unavailable', 'the connection to the database was terminated');
    }
    return super.getObject(name);
  }
}

it('a stock client whose write the store could not authorise sends it again and the relay serves it', async () => {
  const relayStore = new FailingOnceRelayStore();
  const t = await startTestRelay({
    stores: { relayStore, docStore: new MemoryDocStore() },
    rateLimit: false,
    log: () => undefined,
  });
  cleanups.push(() => t.close());
  const alice = await t.user('alice');
  const bob = await t.user('bob');
  const name = 'PUBLIC_RW/_/authorise-fails-once';

  // Bob's stock client starts the document, so the object exists.
  const first = openStockClient(t.wsUrl, name, bob.key, cleanups);
  await synced(first.provider);
  first.doc.getText('t').insert(0, 'first');

  // Alice's stock client connects; its first write is authorised against the store, which
  // loses its connection just then.
  const writer = openStockClient(t.wsUrl, name, alice.key, cleanups);
  await synced(writer.provider);
  await until(writer.doc, (d) => d.getText('t').toString() === 'first');
  const statuses: string[] = [];
  writer.provider.on('status', ({ status }: { status: string }) => statuses.push(status));
  relayStore.failNextReadOf(name);
  writer.doc.getText('t').insert(5, ' second');

  // The relay serves it: a reader that arrives later gets both edits.
  const later = openStockClient(t.wsUrl, name, bob.key, cleanups);
  await synced(later.provider);
  await until(later.doc, (d) => d.getText('t').toString() === 'first second');
  expect(relayStore.failures).toBe(1);
  // It got there by the writer reconnecting, not on the socket that was refused.
  expect(statuses).toContain('disconnected');
}, 30_000);
