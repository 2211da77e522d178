import {
  createClient,
  type DocProvider,
  memoryClientStore,
  type ProviderStatus,
  type SyncClient,
  type SyncError,
} from '@scopesync/client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import type * as Y from 'yjs';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * `client.provider(name)`: a document in the shape editor bindings expect of a y-websocket or
 * Hocuspocus provider, through a real relay — and presence that follows the doc when a refused
 * edit makes the handle rebuild it (before, the awareness kept the first doc's clientID, so an
 * editor showed the user's own caret as someone else's).
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

type UserState = { user?: { id?: string; name?: string } };

/** The presence states `provider` shows as other people's (everything but its doc's client id). */
function othersOf(provider: DocProvider): Map<number, UserState> {
  const mine = provider.doc.clientID;
  return new Map([...provider.awareness.getStates()].filter(([id]) => id !== mine)) as Map<number, UserState>;
}

async function synced(provider: DocProvider): Promise<void> {
  if (!provider.synced) await new Promise<void>((resolve) => provider.once('synced', () => resolve()));
}

describe('the doc provider', () => {
  it('reports status and sync like y-websocket, across a disconnect', async () => {
    const { url } = await relay();
    const ada = await client(url, 'ada');
    const provider = ada.provider('PUBLIC_RW/_/board');
    cleanups.push(() => provider.destroy());
    const statuses: ProviderStatus[] = [];
    const syncs: boolean[] = [];
    provider.on('status', ({ status }) => statuses.push(status));
    provider.on('sync', (state) => syncs.push(state));
    await synced(provider);
    expect(provider.synced).toBe(true);
    expect(provider.doc).toBe(provider.handle.doc);
    expect(provider.awareness.clientID).toBe(provider.doc.clientID);
    expect(provider.roomname).toBe('PUBLIC_RW/_/board');
    statuses.length = 0;
    syncs.length = 0;

    ada.disconnect();
    expect(provider.status).toBe('disconnected');
    expect(provider.synced).toBe(false);
    ada.connect();
    await synced(provider);
    expect(provider.wsconnected).toBe(true);
    expect(statuses).toEqual(['disconnected', 'connecting', 'connected']);
    expect(syncs).toEqual([false, true]);
  });

  it('carries edits and presence between two providers', async () => {
    const { url } = await relay();
    const ada = await client(url, 'ada');
    const bob = await client(url, 'bob');
    const a = ada.provider('PUBLIC_RW/_/pad');
    const b = bob.provider('PUBLIC_RW/_/pad');
    cleanups.push(
      () => a.destroy(),
      () => b.destroy(),
    );
    await Promise.all([synced(a), synced(b)]);
    const unsynced: number[] = [];
    a.on('unsyncedChanges', (count) => unsynced.push(count));
    a.doc.getText('t').insert(0, 'hello');
    a.awareness.setLocalStateField('user', { name: 'Ada' });
    await vi.waitFor(() => expect(b.doc.getText('t').toString()).toBe('hello'));
    await vi.waitFor(() =>
      expect(othersOf(b).get(a.doc.clientID)?.user).toEqual({ id: ada.userId, name: 'Ada' }),
    );
    await a.handle.whenAcked();
    expect(a.unsyncedChanges).toBe(0);
    expect(a.hasUnsyncedChanges).toBe(false);
    // Hocuspocus's unsyncedChanges: the edit waited for the relay's ack, then left the outbox.
    expect(Math.max(...unsynced)).toBeGreaterThan(0);
    expect(unsynced.at(-1)).toBe(0);
    expect(a.readOnly).toBe(false);
  });

  it('after a refused edit, rebuilds the doc and moves presence to its client id: nobody sees a ghost of me', async () => {
    const { url } = await relay();
    const ada = await client(url, 'ada');
    const bob = await client(url, 'bob');
    const name = `USER_PUBLIC/${ada.userId}/essay`;
    const mine = ada.provider(name);
    cleanups.push(() => mine.destroy());
    await synced(mine);
    mine.doc.getText('t').insert(0, 'by Ada');
    await mine.handle.whenAcked();

    // Bob may read Ada's public doc, not write it.
    const seen = bob.provider(name);
    cleanups.push(() => seen.destroy());
    await synced(seen);
    expect(seen.readOnly).toBe(true);
    seen.awareness.setLocalStateField('user', { name: 'Bob' });
    const firstDoc = seen.doc;
    const firstId = seen.awareness.clientID;
    await vi.waitFor(() => expect(othersOf(mine).get(firstId)?.user?.name).toBe('Bob'));

    // Every binding made with bind() is rebuilt with the new doc and awareness.
    const bound: { doc: Y.Doc; clientID: number; readOnly: boolean }[] = [];
    const torn: Y.Doc[] = [];
    const unbind = seen.bind(({ doc, awareness, readOnly }) => {
      bound.push({ doc, clientID: awareness.clientID, readOnly });
      return () => torn.push(doc);
    });
    const resets: Y.Doc[] = [];
    seen.on('reset', ({ doc, awareness }) => {
      expect(awareness.clientID).toBe(doc.clientID);
      resets.push(doc);
    });
    const errors: SyncError[] = [];
    seen.on('error', (error) => errors.push(error));

    // An editor bound to the doc lets Bob type: the edit is refused and the doc rebuilt.
    firstDoc.getText('t').insert(0, 'hijack ');
    await vi.waitFor(() => expect(resets).toHaveLength(1));
    expect(errors.map((e) => e.kind)).toEqual(['Forbidden']);
    expect(seen.doc).not.toBe(firstDoc);
    expect(seen.doc.getText('t').toString()).toBe('by Ada');
    expect(seen.awareness.clientID).toBe(seen.doc.clientID);
    expect(seen.awareness.clientID).not.toBe(firstId);
    expect(seen.awareness.getLocalState()).toMatchObject({ user: { name: 'Bob' } });
    expect(bound.map((b) => b.doc)).toEqual([firstDoc, seen.doc]);
    expect(bound[1]).toEqual({ doc: seen.doc, clientID: seen.doc.clientID, readOnly: true });
    expect(torn).toEqual([firstDoc]);

    // Ada sees Bob once, under his new client id; Bob sees Ada and not himself.
    await vi.waitFor(() => {
      const people = [...othersOf(mine).values()].filter((s) => s.user?.name === 'Bob');
      expect(people).toHaveLength(1);
      expect(othersOf(mine).get(seen.doc.clientID)?.user).toEqual({ id: bob.userId, name: 'Bob' });
    });
    mine.awareness.setLocalStateField('user', { name: 'Ada' });
    await vi.waitFor(() => expect([...othersOf(seen).values()].map((s) => s.user?.id)).toEqual([ada.userId]));
    // Cursor moves after the reset still reach Ada.
    seen.awareness.setLocalStateField('cursor', { anchor: 1, head: 2 });
    await vi.waitFor(() =>
      expect(othersOf(mine).get(seen.doc.clientID)).toMatchObject({ cursor: { anchor: 1, head: 2 } }),
    );

    unbind();
    expect(torn).toEqual([firstDoc, seen.doc]);
  });
});
