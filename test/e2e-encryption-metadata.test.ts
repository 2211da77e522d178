import { createClient, type DocHandle, indexedDbClientStore, type SyncClient } from '@scopesync/client';
import { MemoryDocStore } from '@scopesync/core';
import { MemoryRelayStore } from '@scopesync/relay';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * Attack 8 of issue 17, metadata: what the relay learns from the envelopes of a private doc.
 * The relay here is honest-but-curious: the test reads its stored log as the relay would.
 * A one-character edit and a sentence look the same size; a burst of keystrokes is not one
 * envelope per keystroke.
 */

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function relayWithVisibleLog(): Promise<{ relay: TestRelay; docs: MemoryDocStore }> {
  const docs = new MemoryDocStore();
  const relay = await startTestRelay({
    rateLimit: false,
    stores: { relayStore: new MemoryRelayStore(), docStore: docs },
  });
  closers.push(() => relay.close());
  return { relay, docs };
}

async function device(url: string, deviceName: string): Promise<SyncClient> {
  const client = await createClient({
    url,
    WebSocket,
    deviceName,
    // No relay snapshots during the test: the log shows every envelope the client sent.
    compactAfter: 100_000,
    store: indexedDbClientStore({ indexedDB: new IDBFactory(), IDBKeyRange }),
    backoff: { initialMs: 20, maxMs: 200 },
  });
  closers.push(() => client.close());
  return client;
}

async function typed(handle: DocHandle, text: string): Promise<void> {
  await handle.whenSynced;
  await handle.transact((d) => d.getText('t').insert(0, text));
  await handle.whenAcked();
}

describe('what the relay learns from a private doc', () => {
  it('an edit of one character and one of a sentence seal to envelopes of the same size', async () => {
    const { relay, docs } = await relayWithVisibleLog();
    const client = await device(relay.url, 'laptop');
    const short = `USER_PRIVATE/${client.userId}/short`;
    const long = `USER_PRIVATE/${client.userId}/long`;
    await typed(client.doc(short), 'a');
    await typed(client.doc(long), 'the meeting moved to thursday at ten');
    const [a] = await docs.load(short);
    const [b] = await docs.load(long);
    expect(a?.data.length).toBeGreaterThan(0);
    expect(a?.data.length).toBe(b?.data.length);
  });

  it('a burst of keystrokes reaches the relay as a few envelopes, and the reader gets every one', async () => {
    const { relay, docs } = await relayWithVisibleLog();
    const writer = await device(relay.url, 'laptop');
    const name = `USER_PRIVATE/${writer.userId}/burst`;
    const handle = writer.doc(name);
    await handle.whenSynced;
    const keystrokes = 200;
    // As an editor binding types: each keystroke its own Yjs transaction on the doc, none
    // waiting for the store or the relay.
    const text = handle.doc.getText('t');
    for (let i = 0; i < keystrokes; i++) {
      handle.doc.transact(() => text.insert(i, String.fromCharCode(97 + (i % 26))));
    }
    await handle.whenAcked();
    const stored = await docs.load(name);
    expect(stored.length).toBeLessThan(keystrokes / 4);

    const phrase = await writer.encryption.exportRecoveryPhrase();
    const reader = await createClient({
      url: relay.url,
      WebSocket,
      deviceName: 'phone',
      recoveryPhrase: phrase,
      store: indexedDbClientStore({ indexedDB: new IDBFactory(), IDBKeyRange }),
    });
    closers.push(() => reader.close());
    const read = reader.doc(name);
    await read.whenSynced;
    expect(read.doc.getText('t').toString()).toBe(handle.doc.getText('t').toString());
    expect(read.doc.getText('t').length).toBe(keystrokes);
  });
});
