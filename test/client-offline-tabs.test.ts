import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClientOptions, createClient, indexedDbClientStore, type SyncClient } from '@scopesync/client';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * Tabs of one browser while the relay is unreachable: clients of one process over one
 * (fake) IndexedDB profile play the tabs, talking over Node's BroadcastChannel as a browser's
 * tabs do. What the user notices: an edit in one tab shows in the other at once, offline;
 * presence too; and once the relay is back it has everything either tab wrote.
 */

let relays: TestRelay[] = [];
let tabs: SyncClient[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  for (const t of tabs) await t.close();
  tabs = [];
  for (const r of relays) await r.close();
  relays = [];
});

async function unreachableRelay(): Promise<{ url: string; port: number }> {
  const probe = await startTestRelay({ rateLimit: false });
  const port = Number(new URL(probe.url).port);
  await probe.close();
  return { url: probe.url, port };
}

function browserProfile(): () => ReturnType<typeof indexedDbClientStore> {
  const indexedDB = new IDBFactory();
  return () => indexedDbClientStore({ name: 'scopesync', indexedDB, IDBKeyRange });
}

async function openTab(
  url: string,
  store: () => ReturnType<typeof indexedDbClientStore>,
  options: Partial<ClientOptions> = {},
): Promise<SyncClient> {
  const tab = await createClient({
    url,
    WebSocket,
    store: store(),
    deviceName: 'browser',
    tabSync: true,
    backoff: { initialMs: 20, maxMs: 100 },
    ...options,
  });
  tabs.push(tab);
  return tab;
}

describe('two tabs of one browser, offline', () => {
  it('see each other’s edits at once and converge on concurrent ones', async () => {
    const { url } = await unreachableRelay();
    const profile = browserProfile();
    const a = await openTab(url, profile);
    const b = await openTab(url, profile);
    expect(b.userId).toBe(a.userId);
    const name = `USER_PUBLIC/${a.userId}/notes`;
    const inA = a.doc(name);
    const inB = b.doc(name);
    await Promise.all([inA.whenLoaded, inB.whenLoaded]);
    await inA.transact((d) => d.getText('t').insert(0, 'from tab A. '));
    await vi.waitFor(() => expect(inB.doc.getText('t').toString()).toBe('from tab A. '));
    // Both type at the same moment: both end with both edits.
    await Promise.all([
      inA.transact((d) => d.getText('t').insert(0, '[A]')),
      inB.transact((d) => d.getText('t').insert(d.getText('t').length, '[B]')),
    ]);
    await vi.waitFor(() => {
      expect(inA.doc.getText('t').toString()).toBe(inB.doc.getText('t').toString());
      expect(inA.doc.getText('t').toString()).toMatch(/^\[A\]from tab A\. \[B\]$/);
    });
    expect(a.online).toBe(false);
  });

  it('shows one tab’s userData write in the other tab’s live subscription, private values included', async () => {
    const { url } = await unreachableRelay();
    const profile = browserProfile();
    const a = await openTab(url, profile);
    const b = await openTab(url, profile);
    const me = a.userId as string;
    const seen: { value: unknown; source: string }[] = [];
    const stop = b.userData.subscribe('USER_PRIVATE', me, 'settings', (value, meta) =>
      seen.push({ value, source: meta.source }),
    );
    await vi.waitFor(() => expect(seen).toHaveLength(1));
    await a.userData.set('USER_PRIVATE', me, 'settings', { theme: 'dark' });
    await vi.waitFor(() => expect(seen.at(-1)).toEqual({ value: { theme: 'dark' }, source: 'tab' }));
    stop();
    // Tab B keeps its copy the way it keeps its own edits: sealed, never plaintext at rest.
    const b2 = b.doc(`USER_PRIVATE/${me}/settings`);
    await b2.whenStored();
    const stored = await b.store.docs.load(`USER_PRIVATE/${me}/settings`);
    expect(stored.length).toBeGreaterThan(0);
    for (const entry of stored) expect(Buffer.from(entry.data).includes('dark')).toBe(false);
  });

  it('shares presence between tabs, and a tab opened later catches up with what the others hold', async () => {
    const { url } = await unreachableRelay();
    const dir = await mkdtemp(join(tmpdir(), 'scopesync-tabs-'));
    dirs.push(dir);
    const seedFile = join(dir, 'seed');
    const a = await openTab(url, browserProfile(), { seedFile });
    const name = `USER_PUBLIC/${a.userId}/board`;
    const inA = a.doc(name);
    await inA.transact((d) => d.getMap('m').set('card', 'todo'));
    inA.awareness.setLocalState({ user: { name: 'tab A' } });

    // A second tab with a store of its own (the seed in a shared file makes it the same user):
    // nothing of the doc is in its store, it learns everything from tab A.
    const tab = await openTab(url, browserProfile(), { seedFile });
    expect(tab.userId).toBe(a.userId);
    const inB = tab.doc(name);
    await vi.waitFor(() => expect(inB.doc.getMap('m').get('card')).toBe('todo'));
    const states = (): unknown[] => [...inB.awareness.getStates().values()];
    await vi.waitFor(() => expect(states()).toContainEqual({ user: { name: 'tab A' } }));
    inA.awareness.setLocalState({ user: { name: 'tab A, moved' } });
    await vi.waitFor(() => expect(states()).toContainEqual({ user: { name: 'tab A, moved' } }));
  });

  it('does not share with tabs of another user on the same origin', async () => {
    const { url } = await unreachableRelay();
    const bobsBrowser = browserProfile();
    const alice = await openTab(url, browserProfile());
    const bob = await openTab(url, bobsBrowser);
    expect(bob.userId).not.toBe(alice.userId);
    const name = 'PUBLIC_RW/_/lobby';
    const inAlice = alice.doc(name);
    const inBob = bob.doc(name);
    await inBob.whenLoaded;
    await inAlice.transact((d) => d.getText('t').insert(0, 'alice offline'));
    // A marker edit in a doc both share: once Bob's own tab sees it, Alice's would have too.
    const bob2 = await openTab(url, bobsBrowser);
    const marker = bob2.doc(name);
    await marker.whenLoaded;
    await marker.transact((d) => d.getMap('m').set('x', 1));
    await vi.waitFor(() => expect(inBob.doc.getMap('m').get('x')).toBe(1));
    expect(inBob.doc.getText('t').toString()).toBe('');
  });

  it('loses nothing: once the relay is back it has what both tabs wrote offline', async () => {
    const { url, port } = await unreachableRelay();
    const profile = browserProfile();
    const a = await openTab(url, profile);
    const b = await openTab(url, profile);
    const me = a.userId as string;
    await a.userData.update('USER_PUBLIC', me, 'list', { fromA: 1 });
    await b.userData.update('USER_PUBLIC', me, 'list', { fromB: 2 });
    await vi.waitFor(async () =>
      expect(await a.userData.get('USER_PUBLIC', me, 'list')).toEqual({ fromA: 1, fromB: 2 }),
    );

    const relay = await startTestRelay({ rateLimit: false, port });
    relays.push(relay);
    await vi.waitFor(() => expect(a.registered && b.registered).toBe(true), { timeout: 10_000 });
    await a.userData.update('USER_PUBLIC', me, 'list', {}, { waitForAck: true });
    await b.userData.update('USER_PUBLIC', me, 'list', {}, { waitForAck: true });
    const served = await relay.api('GET', `/userdata/${me}/USER_PUBLIC/list`);
    expect(served.json).toMatchObject({ value: { fromA: 1, fromB: 2 } });
  });
});
