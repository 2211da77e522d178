import { createClient, memoryClientStore, type SyncClient } from '@scopesync/client';
import { type AppendItem, MemoryDocStore, SyncError } from '@scopesync/core';
import { MemoryRelayStore } from '@scopesync/relay';
import { afterEach, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestRelay } from './support/start-test-relay.ts';

// Regression test from the chaos suite (issue #16): a relay delivers a plaintext update to the
// doc's other readers before it commits it. When that commit fails, the writer is answered with
// an error (Unavailable) — and the client used to keep the edit "pending" forever without
// sending it again, so the relay never stored what every other reader already showed.

/** A document store whose next commit touching `doc` fails (a dropped database connection). */
class FailingOnceDocStore extends MemoryDocStore {
  #armed: string | null = null;
  failures = 0;

  /** Makes the next batch that writes `doc` fail. */
  failNextWriteOf(doc: string): void {
    this.#armed = doc;
  }

  override async appendBatch(items: readonly AppendItem[]): Promise<number[]> {
    if (this.#armed !== null && items.some((item) => item.doc === this.#armed)) {
      this.#armed = null;
      this.failures += 1;
      throw new SyncError('Unavailable', 'the connection to the database was terminated');
    }
    return super.appendBatch(items);
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

it('an edit whose first commit failed is sent again, acknowledged, and then served by the relay', async () => {
  const docs = new FailingOnceDocStore();
  const relay = await startTestRelay({
    stores: { relayStore: new MemoryRelayStore(), docStore: docs },
    rateLimit: false,
    // The failed commit is logged as an error on purpose; keep the output quiet.
    log: () => undefined,
  });
  cleanups.push(() => relay.close());
  const open = async (): Promise<SyncClient> => {
    const client = await createClient({ url: relay.url, WebSocket, store: memoryClientStore() });
    cleanups.push(() => client.close());
    return client;
  };
  const name = 'PUBLIC_RW/_/commit-fails-once';

  const writer = await open();
  const pad = writer.doc(name);
  await pad.whenSynced;
  await pad.transact((d) => d.getText('t').insert(0, 'first '));
  await pad.whenAcked();

  // The store loses its connection just as this edit is committed: the relay refuses it.
  docs.failNextWriteOf(pad.name);
  const refused: string[] = [];
  pad.on('error', (error) => refused.push(error.kind));
  await pad.transact((d) => d.getText('t').insert(d.getText('t').length, 'second'));
  // Still online, on the same socket: the client must send it again rather than wait forever.
  await pad.whenAcked();
  expect(docs.failures).toBe(1);
  expect(refused).toContain('Unavailable');
  expect(pad.pending).toBe(0);

  // The relay serves the edit: a fresh client with nothing local gets both.
  const reader = await open();
  const copy = reader.doc(name);
  await copy.whenSynced;
  expect(copy.doc.getText('t').toString()).toBe('first second');
}, 20_000);
