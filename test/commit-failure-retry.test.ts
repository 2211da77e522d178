import { MemoryRelayStore } from '@scopesync/relay';
import { afterEach, expect, it } from 'vitest';
import { FailingOnceDocStore } from './support/failing-doc-store.ts';
import { startQuietRelay } from './support/quiet-relay.ts';

// Regression test from the chaos suite (issue #16): a relay delivers a plaintext update to the
// doc's other readers before it commits it. When that commit fails, the writer is answered with
// an error (Unavailable) — and the client used to keep the edit "pending" forever without
// sending it again, so the relay never stored what every other reader already showed.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

it('an edit whose first commit failed is sent again, acknowledged, and then served by the relay', async () => {
  const docs = new FailingOnceDocStore();
  // The failed commit is logged as an error on purpose; the relay is quiet.
  const { open } = await startQuietRelay({ relayStore: new MemoryRelayStore(), docStore: docs }, cleanups);
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
