import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { enc } from './support/http-client.ts';
import { type TestUser, useTestRelay } from './support/start-test-relay.ts';

// HTTP and WebSocket are one system: HTTP writes reach live sync subscribers, and an HTTP
// share revocation or flag change takes a live subscription away at once.

const t = useTestRelay();
let alice: TestUser;
let bob: TestUser;

beforeAll(async () => {
  alice = await t.user('alice');
  bob = await t.user('bob');
});

const api = t.api;

/** A minimal y-websocket client of the single-document endpoint. */
function openDoc(name: string, key?: string) {
  const doc = new Y.Doc();
  const ws = new WebSocket(`${t.wsUrl}/sync/${enc(name)}${key ? `?key=${key}` : ''}`);
  ws.binaryType = 'arraybuffer';
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  const refused = new Promise<number>((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => undefined);
  });
  const opened = new Promise<void>((resolve) => ws.on('open', () => resolve()));
  ws.on('message', (data: ArrayBuffer) => {
    const decoder = decoding.createDecoder(new Uint8Array(data));
    if (decoding.readVarUint(decoder) !== 0) return; // only sync messages matter here
    const reply = encoding.createEncoder();
    encoding.writeVarUint(reply, 0);
    syncProtocol.readSyncMessage(decoder, reply, doc, 'relay');
    if (encoding.length(reply) > 1) ws.send(encoding.toUint8Array(reply));
  });
  void opened.then(() => {
    const step1 = encoding.createEncoder();
    encoding.writeVarUint(step1, 0);
    syncProtocol.writeSyncStep1(step1, doc);
    ws.send(encoding.toUint8Array(step1));
  });
  /** Resolves once `predicate` holds for the synced document. */
  const until = (predicate: (d: Y.Doc) => boolean) =>
    new Promise<void>((resolve) => {
      if (predicate(doc)) return resolve();
      const check = () => {
        if (predicate(doc)) {
          doc.off('update', check);
          resolve();
        }
      };
      doc.on('update', check);
    });
  return { ws, doc, opened, closed, refused, until };
}

describe('HTTP and live sync', () => {
  it('delivers an HTTP write to a live WebSocket subscriber', async () => {
    await api('POST', '/userdata/_/PUBLIC_RW/board', { body: { value: { title: 'first' } } });
    const live = openDoc('PUBLIC_RW/_/board');
    await live.until((d) => d.getMap('data').get('title') === 'first');
    await api('POST', '/userdata/_/PUBLIC_RW/board', { body: { value: { title: 'second', pinned: true } } });
    await live.until((d) => d.getMap('data').get('title') === 'second');
    expect(live.doc.getMap('data').toJSON()).toEqual({ title: 'second', pinned: true });
    live.ws.close();
  });

  it('reads over HTTP what a WebSocket client wrote', async () => {
    await api('POST', '/userdata/_/PUBLIC_RW/notes', { body: { value: { a: 1 } } });
    const live = openDoc('PUBLIC_RW/_/notes', alice.key);
    await live.until((d) => d.getMap('data').get('a') === 1);
    const before = (await api('GET', '/userdata/_/PUBLIC_RW/notes')).json.version;
    const update = Y.encodeStateAsUpdate(live.doc);
    live.doc.on('update', (u: Uint8Array) => {
      const message = encoding.createEncoder();
      encoding.writeVarUint(message, 0);
      syncProtocol.writeUpdate(message, u);
      live.ws.send(encoding.toUint8Array(message));
    });
    live.doc.getMap('data').set('b', 2);
    expect(update.length).toBeGreaterThan(0);
    await expect
      .poll(async () => (await api('GET', '/userdata/_/PUBLIC_RW/notes')).json, { timeout: 10_000 })
      .toMatchObject({ value: { a: 1, b: 2 } });
    expect((await api('GET', '/userdata/_/PUBLIC_RW/notes')).json.version).toBeGreaterThan(before);
    live.ws.close();
  });

  it('closes a sharee’s live subscription when the share is revoked, and refuses it afterwards', async () => {
    await api('PUT', '/blob/live-doc', { key: alice.key, body: 'x' });
    await api('POST', '/share/live-doc', {
      key: alice.key,
      body: { user_id: bob.userId, access_level: 'read_only' },
    });
    const live = openDoc('blob/live-doc', bob.key);
    await live.opened;
    expect((await api('DELETE', `/share/live-doc/${bob.userId}`, { key: alice.key })).status).toBe(204);
    const { code } = await live.closed;
    expect(code).toBe(4403);
    // Reopened, it looks like an absent blob bob could create (docs/security.md, "Existence"):
    // let in, and synced as an empty document.
    const again = openDoc('blob/live-doc', bob.key);
    await again.opened;
    const step2 = await new Promise<Uint8Array>((resolve) => {
      again.ws.on('message', (data: ArrayBuffer) => {
        const bytes = new Uint8Array(data);
        if (bytes[0] === 0 && bytes[1] === 1) resolve(bytes); // sync, step 2: the answer to its SyncStep1
      });
    });
    expect([...step2]).toEqual([0, 1, 2, 0, 0]);
    again.ws.close();
  });

  it('takes a live subscription away when the owner narrows the object to owner-read', async () => {
    const path = `/userdata/${alice.userId}/USER_PUBLIC/status`;
    await api('POST', path, { key: alice.key, body: { value: { mood: 'public' } } });
    const live = openDoc(`USER_PUBLIC/${alice.userId}/status`, bob.key);
    await live.until((d) => d.getMap('data').get('mood') === 'public');
    await api('POST', path, { key: alice.key, body: { value: { mood: 'private' }, read: 1 } });
    expect((await live.closed).code).toBe(4403);
    expect(live.doc.getMap('data').get('mood')).toBe('public');
  });

  it('refuses a WebSocket without read access at the upgrade, like HTTP hides the object', async () => {
    await api('POST', `/userdata/${alice.userId}/USER_PUBLIC/hidden`, {
      key: alice.key,
      body: { value: {}, read: 1 },
    });
    expect((await api('GET', `/userdata/${alice.userId}/USER_PUBLIC/hidden`, { key: bob.key })).status).toBe(
      404,
    );
    expect(await openDoc(`USER_PUBLIC/${alice.userId}/hidden`, bob.key).refused).toBe(403);
    expect(await openDoc('PUBLIC_RW/_/x', 'not-a-key').refused).toBe(401);
  });
});
