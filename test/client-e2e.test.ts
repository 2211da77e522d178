import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClientOptions, createClient, memoryClientStore, type SyncClient } from '@scopesync/client';
import { SyncError } from '@scopesync/core';
import { createRelay, type Relay } from '@scopesync/relay';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import type * as Y from 'yjs';

/*
 * The client against the real relay: SQLite data dir, port 0, HTTP and the multiplexed /sync
 * socket. Offline is either the client's own disconnect() or a relay that is not running.
 */

interface RunningRelay {
  readonly relay: Relay;
  readonly url: string;
  readonly dir: string;
}

const relays: Relay[] = [];
const dirs: string[] = [];
let clients: SyncClient[] = [];

afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const r of relays.splice(0)) await r.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function startRelay(dir?: string, port = 0): Promise<RunningRelay> {
  const dataDir = dir ?? mkdtempSync(join(tmpdir(), 'scopesync-e2e-'));
  if (!dir) dirs.push(dataDir);
  const relay = createRelay({ dataDir, port, rateLimit: false, log: () => undefined });
  relays.push(relay);
  const { url } = await relay.listen();
  return { relay, url, dir: dataDir };
}

async function stopRelay(running: RunningRelay): Promise<void> {
  await running.relay.close();
  relays.splice(relays.indexOf(running.relay), 1);
}

async function client(url: string, options: Partial<ClientOptions> = {}): Promise<SyncClient> {
  const c = await createClient({
    url,
    WebSocket,
    store: memoryClientStore(),
    backoff: { initialMs: 20, maxMs: 200 },
    ...options,
  });
  clients.push(c);
  return c;
}

const text = (doc: Y.Doc): string => doc.getText('t').toString();

describe('client ⇄ real relay', () => {
  it('registers a device and learns its user id and level', async () => {
    const { url } = await startRelay();
    const a = await client(url, { deviceName: 'laptop' });
    expect(a.userId).toMatch(/^user_[0-9a-f]{16}$/);
    expect(a.level).toBe(1);
  });

  it('two clients converge after one edits while offline (its socket closed)', async () => {
    const { url } = await startRelay();
    const a = await client(url, { deviceName: 'a' });
    const b = await client(url, { deviceName: 'b' });
    const name = 'PUBLIC_RW/_/pad';
    const da = a.doc(name);
    const db = b.doc(name);
    await Promise.all([da.whenSynced, db.whenSynced]);
    await da.transact((d) => d.getText('t').insert(0, 'shared '));
    await vi.waitFor(() => expect(text(db.doc)).toBe('shared '));

    a.disconnect();
    await da.transact((d) => d.getText('t').insert(d.getText('t').length, 'A-offline '));
    await db.transact((d) => d.getText('t').insert(0, 'B-online '));
    await db.whenAcked();
    expect(text(da.doc)).not.toContain('B-online');
    a.connect();
    await da.whenAcked();
    await vi.waitFor(() => {
      expect(text(da.doc)).toBe(text(db.doc));
      expect(text(da.doc)).toContain('A-offline');
      expect(text(da.doc)).toContain('B-online');
    });
  });

  it('a client pointed at a stopped relay keeps working and delivers when the relay is back', async () => {
    const first = await startRelay();
    const a = await client(first.url, { deviceName: 'a' });
    const b = await client(first.url, { deviceName: 'b' });
    const name = `USER_PUBLIC/${a.userId}/journal`;
    const da = a.doc(name);
    const db = b.doc(name);
    await da.whenSynced;
    // Nobody wrote it yet: to b it does not exist, so b waits for it.
    await vi.waitFor(() => expect(db.access).toBe('waiting'));
    await stopRelay(first);
    await da.transact((d) => d.getText('t').insert(0, 'written while the relay was down'));
    expect(da.pending).toBe(1);
    // The same data dir on the same port: both clients find it again on their own.
    await startRelay(first.dir, Number(new URL(first.url).port));
    await da.whenAcked();
    await vi.waitFor(() => expect(text(db.doc)).toBe('written while the relay was down'));
  });

  it('a read-only sharee sees the owner’s edits live; its own edit is refused visibly', async () => {
    const { url } = await startRelay();
    const owner = await client(url, { deviceName: 'owner' });
    const sharee = await client(url, { deviceName: 'sharee' });
    const od = owner.blobs.open('board');
    await od.whenSynced;
    await od.transact((d) => d.getText('t').insert(0, 'v1'));
    await od.whenAcked();
    await owner.blobs.share('board', sharee.userId as string, 'read_only');

    const sd = sharee.blobs.open('board');
    await sd.whenSynced;
    expect(sd.access).toBe('read');
    expect(text(sd.doc)).toBe('v1');
    await od.transact((d) => d.getText('t').insert(2, ' v2'));
    await vi.waitFor(() => expect(text(sd.doc)).toBe('v1 v2'));

    await expect(sd.transact((d) => d.getText('t').insert(0, 'hack'))).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    const errors: SyncError[] = [];
    sd.on('error', (e) => errors.push(e));
    sd.doc.getText('t').insert(0, 'direct ');
    expect(errors.map((e) => e.kind)).toContain('Forbidden');
    await vi.waitFor(() => expect(text(sd.doc)).toBe('v1 v2'));
    expect(text(od.doc)).toBe('v1 v2');
  });

  it('revoking a share closes the sharee’s doc handle at once', async () => {
    const { url } = await startRelay();
    const owner = await client(url, { deviceName: 'owner' });
    const sharee = await client(url, { deviceName: 'sharee' });
    const od = owner.blobs.open('notes');
    await od.whenSynced;
    await od.transact((d) => d.getText('t').insert(0, 'shared notes'));
    await od.whenAcked();
    await owner.blobs.share('notes', sharee.userId as string, 'read_write');
    const sd = sharee.blobs.open('notes');
    await sd.whenSynced;
    expect(sd.access).toBe('read-write');
    await sd.transact((d) => d.getText('t').insert(0, '(sharee) '));
    await sd.whenAcked();
    await vi.waitFor(() => expect(text(od.doc)).toBe('(sharee) shared notes'));

    const permission = new Promise<string>((resolve) => sd.on('permission', ({ access }) => resolve(access)));
    const closed = new Promise<void>((resolve) => sd.on('closed', () => resolve()));
    await owner.blobs.revoke('notes', sharee.userId as string);
    expect(await permission).toBe('none');
    await closed;
    expect(sd.closed).toBe(true);
    await expect(sd.transact((d) => d.getText('t').insert(0, 'late'))).rejects.toBeInstanceOf(SyncError);
    expect(await owner.blobs.listShares('notes')).toEqual([]);
  });

  it('userData and the HTTP userdata API read and write the same value', async () => {
    const { url } = await startRelay();
    const a = await client(url, { deviceName: 'a' });
    const key = a.userId as string;
    await a.userData.set('USER_PUBLIC', key, 'profile', { name: 'Ada', langs: ['en'] });
    await a.doc(`USER_PUBLIC/${key}/profile`).whenAcked();
    const got = await fetch(`${url}/userdata/${key}/USER_PUBLIC/profile`);
    expect(got.status).toBe(200);
    expect(((await got.json()) as { value: unknown }).value).toEqual({ name: 'Ada', langs: ['en'] });

    const b = await client(url, { deviceName: 'b' });
    expect(await b.userData.get('USER_PUBLIC', key, 'profile')).toEqual({ name: 'Ada', langs: ['en'] });
    expect(await a.userData.list('USER_PUBLIC', key)).toEqual(['profile']);
    await expect(b.userData.set('USER_PUBLIC', key, 'profile', { name: 'Mallory' })).rejects.toMatchObject({
      kind: 'Forbidden',
    });

    await a.userData.delete('USER_PUBLIC', key, 'profile');
    expect((await fetch(`${url}/userdata/${key}/USER_PUBLIC/profile`)).status).toBe(404);
    expect(await a.userData.get('USER_PUBLIC', key, 'profile')).toBeUndefined();
  });

  it('raw blobs: versions, conditional writes and their conflicts', async () => {
    const { url } = await startRelay();
    const a = await client(url, { deviceName: 'a' });
    const first = await a.blobs.put('app/config.json', new TextEncoder().encode('{"v":1}'), { ifVersion: 0 });
    const read = await a.blobs.get('app/config.json');
    expect(new TextDecoder().decode(read.bytes)).toBe('{"v":1}');
    expect(read.version).toBe(first.version);
    await a.blobs.put('app/config.json', new TextEncoder().encode('{"v":2}'), { ifVersion: first.version });
    const stale = await a.blobs
      .put('app/config.json', new Uint8Array([1]), { ifVersion: first.version })
      .catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(SyncError);
    expect(['PreconditionFailed', 'Conflict']).toContain((stale as SyncError).kind);
    await expect(
      a.blobs.put('app/config.json', new Uint8Array([1]), { ifVersion: 0 }),
    ).rejects.toBeInstanceOf(SyncError);
  });

  it('a key the relay rejects fails createClient; a key revoked while connected stops reconnecting', async () => {
    const { url } = await startRelay();
    await expect(client(url, { apiKey: 'not-a-real-key-0000000000000000' })).rejects.toMatchObject({
      kind: 'Unauthorized',
    });

    const registered = (await (
      await fetch(`${url}/keys`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"device_name":"x"}',
      })
    ).json()) as { key: string; user_id: string };
    const a = await client(url, { apiKey: registered.key });
    const doc = a.doc(`USER_PUBLIC/${registered.user_id}/d`);
    await doc.whenSynced;
    const authError = new Promise<SyncError>((resolve) => a.on('auth-error', resolve));
    const revoked = await fetch(`${url}/keys/${encodeURIComponent(registered.key)}`, {
      method: 'DELETE',
      headers: { 'x-api-key': registered.key },
    });
    expect(revoked.status).toBe(204);
    // The relay may keep the open socket; a reconnect then meets the revoked key.
    a.disconnect();
    a.connect();
    expect((await authError).kind).toMatch(/Unauthorized|Forbidden/);
    expect(a.status).toBe('auth-failed');
  });
});

// Encrypted USER_PRIVATE docs between two devices are covered with the built-in encryption,
// real envelopes and byte scans of every store in e2e-encryption-private.test.ts.
