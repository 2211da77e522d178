import { MemoryRelayStore } from '@scopesync/relay';
import * as encoding from 'lib0/encoding';
import { afterEach, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { FailingOnceDocStore } from './support/failing-doc-store.ts';
import { startTestRelay } from './support/start-test-relay.ts';
import { openStockClient, synced, until } from './support/stock-clients.ts';

// Regression test from the chaos suite (issue #16, finding 14's "stock client ahead"): a relay
// shows an update to the doc's readers before it commits it. When that commit fails and its
// writer is gone for good (a client that restarted from nothing), the readers hold an edit the
// relay never stored — they stay ahead of the relay, and every later reader misses it. After
// the reload that follows the failure the relay asks its readers for what it lacks (SyncStep1):
// a reader allowed to write hands it back, and it is stored like any write.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A y-protocols sync update frame. */
function updateFrame(update: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, 0); // messageSync
  syncProtocol.writeUpdate(encoder, update);
  return encoding.toUint8Array(encoder);
}

it('an update shown to readers whose commit failed and whose writer is gone is asked back from the readers and stored', async () => {
  const docs = new FailingOnceDocStore();
  const t = await startTestRelay({
    stores: { relayStore: new MemoryRelayStore(), docStore: docs },
    rateLimit: false,
    log: () => undefined,
  });
  cleanups.push(() => t.close());
  const alice = await t.user('alice');
  const bob = await t.user('bob');
  const name = 'PUBLIC_RW/_/ask-back';

  // Bob reads (and may write) the doc with a stock client.
  const reader = openStockClient(t.wsUrl, name, bob.key, cleanups);
  await synced(reader.provider);

  // Alice's writer is a bare socket: it sends one update and never resends anything (like a
  // client whose outbox was lost). Its commit fails.
  const writerDoc = new Y.Doc();
  writerDoc.getText('t').insert(0, 'kept by the readers');
  const ws = new WebSocket(`${t.wsUrl}/sync/${name}?key=${alice.key}`);
  cleanups.push(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  docs.failNextWriteOf(name);
  ws.send(updateFrame(Y.encodeStateAsUpdate(writerDoc)));

  // The reader was shown it before the commit.
  await until(reader.doc, (d) => d.getText('t').toString() === 'kept by the readers');
  expect(docs.failures).toBe(1);
  ws.terminate();

  // A reader that arrives later gets it from the relay: it was asked back and stored.
  const later = openStockClient(t.wsUrl, name, bob.key, cleanups);
  await synced(later.provider);
  await until(later.doc, (d) => d.getText('t').toString() === 'kept by the readers');
  const stored = await docs.load(name);
  expect(stored.length).toBeGreaterThan(0);
}, 30_000);
