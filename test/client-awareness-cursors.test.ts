import { createClient, type DocHandle, memoryClientStore, type SyncClient } from '@scopesync/client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * Presence through the real relay on the multiplexed socket: `handle.awareness` carries live
 * cursors between clients, bound to the sender's user id by the relay, re-announced after a
 * reconnect and removed when a handle is released.
 */

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function relay(): Promise<TestRelay> {
  const r = await startTestRelay({ rateLimit: false });
  cleanups.push(() => r.close());
  return r;
}

async function client(url: string, deviceName: string): Promise<SyncClient> {
  const c = await createClient({
    url,
    deviceName,
    WebSocket,
    store: memoryClientStore(),
    backoff: { initialMs: 20, maxMs: 200 },
  });
  cleanups.push(() => c.close());
  return c;
}

/** The states other clients published on `handle`, by client id. */
function others(handle: DocHandle): Map<number, Record<string, unknown>> {
  const mine = handle.awareness.clientID;
  return new Map([...handle.awareness.getStates()].filter(([id]) => id !== mine));
}

function stateOf(handle: DocHandle, clientId: number): Record<string, unknown> | undefined {
  return handle.awareness.getStates().get(clientId) as Record<string, unknown> | undefined;
}

describe('awareness on the multiplexed client', () => {
  it("two clients see each other's cursors, bound to the sender's user id", async () => {
    const { url } = await relay();
    const ada = await client(url, 'ada');
    const bob = await client(url, 'bob');
    const name = 'PUBLIC_RW/_/pad';
    const a = ada.doc(name);
    const b = bob.doc(name);
    await Promise.all([a.whenSynced, b.whenSynced]);

    // Ada claims to be Bob: the relay overwrites user.id with who she really is.
    a.awareness.setLocalStateField('user', { id: bob.userId, name: 'Ada', color: '#f0a' });
    a.awareness.setLocalStateField('cursor', { anchor: 3, head: 7 });
    b.awareness.setLocalStateField('user', { name: 'Bob', color: '#0af' });
    b.awareness.setLocalStateField('cursor', { anchor: 0, head: 0 });

    await vi.waitFor(() => {
      expect(stateOf(b, a.awareness.clientID)).toEqual({
        user: { id: ada.userId, name: 'Ada', color: '#f0a' },
        cursor: { anchor: 3, head: 7 },
      });
    });
    await vi.waitFor(() => {
      expect(stateOf(a, b.awareness.clientID)).toMatchObject({
        user: { id: bob.userId, name: 'Bob' },
        cursor: { anchor: 0, head: 0 },
      });
    });

    // Moving the cursor reaches the other side.
    a.awareness.setLocalStateField('cursor', { anchor: 9, head: 9 });
    await vi.waitFor(() =>
      expect(stateOf(b, a.awareness.clientID)).toMatchObject({ cursor: { anchor: 9, head: 9 } }),
    );
  });

  it('a late joiner receives the states already there, and a read-only sharee shows its cursor', async () => {
    const { url } = await relay();
    const owner = await client(url, 'owner');
    const viewer = await client(url, 'viewer');
    const blob = owner.blobs.open('deck');
    await blob.whenSynced;
    await blob.transact((d) => d.getText('t').insert(0, 'slides'));
    await blob.whenAcked();
    blob.awareness.setLocalStateField('cursor', { anchor: 1, head: 1 });
    await owner.blobs.share('deck', viewer.userId as string, 'read_only');

    const seen = viewer.blobs.open('deck');
    await seen.whenSynced;
    // Created after the subscription: first use asks the relay for the states already there.
    await vi.waitFor(() =>
      expect(stateOf(seen, blob.awareness.clientID)).toMatchObject({
        user: { id: owner.userId },
        cursor: { anchor: 1, head: 1 },
      }),
    );
    seen.awareness.setLocalStateField('cursor', { anchor: 4, head: 4 });
    await vi.waitFor(() =>
      expect(stateOf(blob, seen.awareness.clientID)).toMatchObject({
        user: { id: viewer.userId },
        cursor: { anchor: 4, head: 4 },
      }),
    );
  });

  it('is re-announced after a reconnect and removed when the handle is released', async () => {
    const { url } = await relay();
    const ada = await client(url, 'ada');
    const bob = await client(url, 'bob');
    const name = 'PUBLIC_RW/_/room';
    const a = ada.doc(name);
    const b = bob.doc(name);
    await Promise.all([a.whenSynced, b.whenSynced]);
    a.awareness.setLocalStateField('cursor', { anchor: 2, head: 2 });
    b.awareness.setLocalStateField('cursor', { anchor: 5, head: 5 });
    await vi.waitFor(() => expect(others(b).has(a.awareness.clientID)).toBe(true));
    await vi.waitFor(() => expect(others(a).has(b.awareness.clientID)).toBe(true));

    // Ada goes offline: Bob sees her leave, Ada forgets Bob (stale while she hears nothing).
    ada.disconnect();
    await vi.waitFor(() => expect(others(b).has(a.awareness.clientID)).toBe(false));
    expect(others(a).size).toBe(0);
    // She keeps moving her cursor offline; back online, Bob sees where it is now.
    a.awareness.setLocalStateField('cursor', { anchor: 8, head: 8 });
    ada.connect();
    await vi.waitFor(() =>
      expect(stateOf(b, a.awareness.clientID)).toMatchObject({ cursor: { anchor: 8, head: 8 } }),
    );
    await vi.waitFor(() =>
      expect(stateOf(a, b.awareness.clientID)).toMatchObject({ cursor: { anchor: 5, head: 5 } }),
    );

    // Releasing the handle takes Ada's presence away.
    const adaId = a.awareness.clientID;
    await a.release();
    await vi.waitFor(() => expect(others(b).has(adaId)).toBe(false));
  });

  it('works on an end-to-end encrypted doc between two devices of one user', async () => {
    const { url } = await relay();
    const laptop = await client(url, 'laptop');
    const phone = await createClient({
      url,
      deviceName: 'phone',
      recoveryPhrase: await laptop.encryption.exportRecoveryPhrase(),
      WebSocket,
      store: memoryClientStore(),
    });
    cleanups.push(() => phone.close());
    const name = `USER_PRIVATE/${laptop.userId}/draft`;
    const a = laptop.doc(name);
    const b = phone.doc(name);
    await Promise.all([a.whenSynced, b.whenSynced]);
    a.awareness.setLocalStateField('cursor', { anchor: 1, head: 2 });
    await vi.waitFor(() =>
      expect(stateOf(b, a.awareness.clientID)).toMatchObject({
        user: { id: laptop.userId },
        cursor: { anchor: 1, head: 2 },
      }),
    );
  });
});
