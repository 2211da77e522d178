import { decodeMuxFrame, encodeMuxFrame, Level, type Message } from '@scopesync/core';
import { generateApiKey, hashApiKey } from '@scopesync/relay';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { enc } from './support/http-client.ts';
import { useTestRelay } from './support/start-test-relay.ts';

// Revocations reach live sockets at once: a revoked API key's sockets close with 4401 (and
// only that key's), and a level change re-checks the user's live subscriptions.

const t = useTestRelay();

const api = t.api;

/** A socket that records its frames and how it closed. */
async function connect(path: string) {
  const ws = new WebSocket(`${t.wsUrl}${path}`);
  const frames: Message[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data: Buffer) => {
    const bytes = new Uint8Array(data);
    if (path.startsWith('/sync?')) frames.push(decodeMuxFrame(bytes).message);
    for (const wake of waiters.splice(0)) wake();
  });
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
  });
  const next = async (match: (m: Message) => boolean): Promise<Message> => {
    for (;;) {
      const i = frames.findIndex(match);
      if (i >= 0) return frames.splice(i, 1)[0] as Message;
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  return { ws, closed, next, send: (doc: string, m: Message) => ws.send(encodeMuxFrame(doc, m)) };
}

/** A Yjs update setting `field` in a fresh doc. */
function update(field: string, value: string): Uint8Array {
  const doc = new Y.Doc();
  doc.getMap('data').set(field, value);
  return Y.encodeStateAsUpdate(doc);
}

describe('revoking an API key', () => {
  it('closes that key’s open sockets at once with 4401, and leaves the user’s other keys alone', async () => {
    const { key, userId } = await t.user('laptop');
    const doc = `USER_PUBLIC/${userId}/profile`;
    const mux = await connect(`/sync?key=${key}`);
    mux.send(doc, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    expect(await mux.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });
    const single = await connect(`/sync/${enc(doc)}?key=${key}`);
    // A second key of the same user (another device), open too.
    const otherKey = generateApiKey();
    await t.relay.store.addKey({
      keyHash: hashApiKey(otherKey),
      userId,
      createdAt: Date.now(),
      revokedAt: null,
    });
    const otherSocket = await connect(`/sync?key=${otherKey}`);

    expect((await api('DELETE', `/keys/${key}`, { key })).status).toBe(204);
    expect(await mux.closed).toMatchObject({ code: 4401 });
    expect(await single.closed).toMatchObject({ code: 4401 });
    expect(otherSocket.ws.readyState).toBe(WebSocket.OPEN);
    // The revoked key cannot come back either.
    await expect(connect(`/sync?key=${key}`)).rejects.toThrow(/401/);
    otherSocket.ws.close();
  });

  it('keeps the socket when another user tries to revoke the key, and closes it when its holder does', async () => {
    const { key, userId } = await t.user('tablet');
    const second = await t.relay.runtime.createUser({ deviceName: 'unrelated' });
    const socket = await connect(`/sync?key=${key}`);
    // Another user's key may not revoke it; the socket stays.
    expect((await api('DELETE', `/keys/${key}`, { key: second.key })).status).toBe(403);
    expect(socket.ws.readyState).toBe(WebSocket.OPEN);
    expect((await api('GET', '/keys/validate', { key })).json.user_id).toBe(userId);
    expect((await api('DELETE', `/keys/${key}`)).status).toBe(204);
    expect(await socket.closed).toMatchObject({ code: 4401 });
  });
});

describe('changing a level', () => {
  it('re-checks the user’s live subscriptions at the new level', async () => {
    const owner = await t.user('owner');
    const mod = await t.user('moderator', Level.Moderator);
    const doc = `USER_PUBLIC/${owner.userId}/profile`;
    await api('POST', `/userdata/${owner.userId}/USER_PUBLIC/profile`, {
      key: owner.key,
      body: { value: { name: 'Owner' } },
    });
    const socket = await connect(`/sync?key=${mod.key}`);
    socket.send(doc, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    // Moderators may write other users' USER_PUBLIC objects.
    expect(await socket.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });

    await t.relay.runtime.setLevel(mod.userId, Level.User);
    expect(await socket.next((m) => m.type === 'permission')).toMatchObject({ access: 'read' });
    socket.send(doc, { type: 'tracked-update', ref: 1, update: update('name', 'Defaced') });
    expect(await socket.next((m) => m.type === 'error' || m.type === 'ack')).toMatchObject({
      type: 'error',
      ref: 1,
      kind: 'Forbidden',
    });

    await t.relay.runtime.setLevel(mod.userId, Level.Moderator);
    expect(await socket.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });
    socket.send(doc, { type: 'tracked-update', ref: 2, update: update('note', 'moderated') });
    expect(await socket.next((m) => m.type === 'error' || m.type === 'ack')).toMatchObject({
      type: 'ack',
      ref: 2,
    });
    socket.ws.close();
  });
});

describe('revoking a share', () => {
  it('ends the sharee’s live subscription of the blob', async () => {
    const owner = await t.user('blob-owner');
    const sharee = await t.user('blob-sharee');
    const blob = 'board';
    const ownerSocket = await connect(`/sync?key=${owner.key}`);
    ownerSocket.send(`blob/${blob}`, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    await ownerSocket.next((m) => m.type === 'permission');
    ownerSocket.send(`blob/${blob}`, { type: 'tracked-update', ref: 1, update: update('a', 'b') });
    expect(await ownerSocket.next((m) => m.type === 'ack')).toMatchObject({ ref: 1 });
    await api('POST', `/share/${blob}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_write' },
    });
    const socket = await connect(`/sync?key=${sharee.key}`);
    socket.send(`blob/${blob}`, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    expect(await socket.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });
    expect((await api('DELETE', `/share/${blob}/${sharee.userId}`, { key: owner.key })).status).toBe(204);
    expect(await socket.next((m) => m.type === 'permission')).toMatchObject({ access: 'none' });
    socket.ws.close();
    ownerSocket.ws.close();
  });
});
