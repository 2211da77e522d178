import { parseDocName } from '@scopesync/core';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { enc } from './support/http-client.ts';
import { type TestUser, useTestRelay } from './support/start-test-relay.ts';

// An unmodified y-websocket client (the npm package, WebSocket from 'ws') against the real
// relay over SQLite: it must sync, and read-only callers must be synced but never write.

const t = useTestRelay();
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;

beforeAll(async () => {
  alice = await t.user('alice');
  bob = await t.user('bob');
  carol = await t.user('carol');
});

const providers: WebsocketProvider[] = [];
afterEach(() => {
  for (const p of providers.splice(0)) p.destroy();
  vi.restoreAllMocks();
});

function connect(name: string, key?: string): { doc: Y.Doc; provider: WebsocketProvider } {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(`${t.wsUrl}/sync`, name, doc, {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    params: key === undefined ? {} : { key },
    disableBc: true,
  });
  providers.push(provider);
  return { doc, provider };
}

function whenSynced(provider: WebsocketProvider): Promise<void> {
  if (provider.synced) return Promise.resolve();
  return new Promise((resolve) => {
    const onSync = (synced: boolean): void => {
      if (!synced) return;
      provider.off('sync', onSync);
      resolve();
    };
    provider.on('sync', onSync);
  });
}

/** Resolves once `predicate(doc)` holds. */
function until(doc: Y.Doc, predicate: (doc: Y.Doc) => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (!predicate(doc)) return;
      doc.off('update', check);
      resolve();
    };
    doc.on('update', check);
    check();
  });
}

const text = (doc: Y.Doc): string => doc.getText('t').toString();

/** Status code of a refused WebSocket upgrade. */
function refusal(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      ws.close();
      reject(new Error('the relay accepted the upgrade'));
    });
    ws.on('error', () => undefined);
  });
}

describe('y-websocket WebsocketProvider against the relay', () => {
  it('syncs two clients both ways through /sync/<name>, awareness included', async () => {
    const name = parseDocName('PUBLIC_RW/_/interop-notes').name;
    const a = connect(name, alice.key);
    const b = connect(name, bob.key);
    await Promise.all([whenSynced(a.provider), whenSynced(b.provider)]);
    a.doc.getText('t').insert(0, 'hello ');
    await until(b.doc, (d) => text(d) === 'hello ');
    b.doc.getText('t').insert(6, 'world');
    await until(a.doc, (d) => text(d) === 'hello world');

    a.provider.awareness.setLocalStateField('user', { name: 'Alice', color: '#f00' });
    await vi.waitFor(() => {
      const state = b.provider.awareness.getStates().get(a.doc.clientID);
      // Bound by the relay to the authenticated user; the rest of `user` is kept.
      expect(state?.user).toEqual({ name: 'Alice', color: '#f00', id: alice.userId });
    });

    // A third client arriving later gets everything, from the SQLite-backed relay.
    const c = connect(name);
    await whenSynced(c.provider);
    expect(text(c.doc)).toBe('hello world');
  });

  it('syncs a reader of another user’s USER_PUBLIC doc but never takes its edits', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const name = parseDocName(`USER_PUBLIC/${alice.userId}/interop-profile`).name;
    const owner = connect(name, alice.key);
    await whenSynced(owner.provider);
    owner.doc.getText('t').insert(0, 'by alice');
    await vi.waitFor(async () => expect(await t.relay.hub.head(name)).toBeGreaterThan(0));

    const reader = connect(name, bob.key);
    await whenSynced(reader.provider);
    expect(text(reader.doc)).toBe('by alice');

    reader.doc.getText('t').insert(0, 'bob was here: ');
    await vi.waitFor(() =>
      expect(warn.mock.calls.some(([m]) => String(m).includes('Permission denied'))).toBe(true),
    );
    // The owner keeps writing and the reader keeps receiving; the reader's edit went nowhere.
    owner.doc.getText('t').insert(8, '!');
    await until(reader.doc, (d) => text(d).endsWith('by alice!'));
    expect(await t.relay.hub.read(name, (d) => text(d))).toBe('by alice!');
    expect(text(owner.doc)).toBe('by alice!');
  });

  it('syncs a read_only blob sharee but never takes its edits', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const name = parseDocName('blob/interop-blob-1').name;
    const owner = connect(name, alice.key);
    await whenSynced(owner.provider);
    owner.doc.getText('t').insert(0, 'shared text');
    await vi.waitFor(async () => expect(await t.relay.hub.head(name)).toBeGreaterThan(0));
    const share = await t.api('POST', `/share/${enc('interop-blob-1')}`, {
      key: alice.key,
      body: { user_id: bob.userId, access_level: 'read_only' },
    });
    expect(share.status).toBe(200);

    const sharee = connect(name, bob.key);
    await whenSynced(sharee.provider);
    expect(text(sharee.doc)).toBe('shared text');
    sharee.doc.getText('t').insert(0, 'sharee edit ');
    await vi.waitFor(() =>
      expect(warn.mock.calls.some(([m]) => String(m).includes('Permission denied'))).toBe(true),
    );
    owner.doc.getText('t').insert(11, '.');
    await until(sharee.doc, (d) => text(d).endsWith('shared text.'));
    expect(await t.relay.hub.read(name, (d) => text(d))).toBe('shared text.');
    expect(text(owner.doc)).toBe('shared text.');
  });

  it('refuses callers without read access at the upgrade: 403, and 401 for an invalid key; lets someone else’s blob look absent', async () => {
    const privateDoc = `USER_PRIVATE/${alice.userId}/secret`;
    expect(await refusal(`${t.wsUrl}/sync/${privateDoc}?key=${bob.key}`)).toBe(403);
    const name = parseDocName('blob/interop-blob-2').name;
    const owner = connect(name, alice.key);
    await whenSynced(owner.provider);
    owner.doc.getText('t').insert(0, 'not for carol');
    await vi.waitFor(async () => expect(await t.relay.hub.head(name)).toBeGreaterThan(0));
    // Someone else's blob: let in like an absent one carol could create (docs/security.md,
    // "Existence"), and synced as an empty document.
    const stranger = connect(name, carol.key);
    await whenSynced(stranger.provider);
    expect(text(stranger.doc)).toBe('');
    expect(await refusal(`${t.wsUrl}/sync/${name}?key=not-a-key`)).toBe(401);
    expect(await refusal(`${t.wsUrl}/sync/blob%2F..`)).toBe(400);
  });

  it('closes only the socket that sends a malformed frame', async () => {
    const name = parseDocName('PUBLIC_RW/_/interop-malformed').name;
    const a = connect(name);
    const b = connect(name);
    await Promise.all([whenSynced(a.provider), whenSynced(b.provider)]);
    const bad = new WebSocket(`${t.wsUrl}/sync/${enc(name)}`);
    const closed = new Promise<number>((resolve) => bad.on('close', (code) => resolve(code)));
    bad.on('open', () => bad.send(new Uint8Array([0, 2, 200, 1, 1])));
    expect(await closed).toBe(4400);
    a.doc.getText('t').insert(0, 'still syncing');
    await until(b.doc, (d) => text(d) === 'still syncing');
    expect(a.provider.wsconnected && b.provider.wsconnected).toBe(true);
  });
});
