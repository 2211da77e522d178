import { decodeMuxFrame, encodeMuxFrame, Level } from '@scopesync/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { createRelay, type Relay } from './relay.ts';
import type { RelayLogLevel } from './relay-log.ts';

// What an operator sees of a relay: its log lines (requests, sockets, denials), /metrics, and
// the admin route that changes a level through the running relay.

interface Line {
  readonly level: RelayLogLevel;
  readonly message: string;
  readonly context: Record<string, unknown>;
}

let relays: Relay[] = [];
afterEach(async () => {
  for (const relay of relays) await relay.close();
  relays = [];
});

async function start(): Promise<{ relay: Relay; lines: Line[] }> {
  const lines: Line[] = [];
  const relay = createRelay({
    port: 0,
    rateLimit: false,
    log: (level, message, context) => {
      lines.push({ level, message, context: context ?? {} });
    },
  });
  relays.push(relay);
  await relay.listen();
  return { relay, lines };
}

/** A multiplexed socket as `key`, with every permission message it received. */
async function muxSocket(
  relay: Relay,
  key: string,
): Promise<{ ws: WebSocket; permissions: { doc: string; access: string }[] }> {
  const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/sync`, { headers: { 'x-api-key': key } });
  const permissions: { doc: string; access: string }[] = [];
  ws.on('message', (data: Buffer) => {
    const { docName, message } = decodeMuxFrame(new Uint8Array(data));
    if (message.type === 'permission') permissions.push({ doc: docName, access: message.access });
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, permissions };
}

describe('the relay, as operators see it', () => {
  it('logs one info line per HTTP request, without keys or query strings', async () => {
    const { relay, lines } = await start();
    const { key, userId } = await relay.runtime.createUser({ deviceName: 'd' });
    const spare = await relay.runtime.createUser({ deviceName: 'spare' });

    expect((await fetch(`${relay.url}/keys/validate?key=${key}`)).status).toBe(200);
    const write = await fetch(`${relay.url}/userdata/${userId}/USER_PUBLIC/p`, {
      method: 'POST',
      headers: { 'x-api-key': key },
      body: JSON.stringify({ value: { a: 1 } }),
    });
    expect(write.status).toBe(200);
    expect((await fetch(`${relay.url}/keys/${spare.key}`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${relay.url}/health`)).status).toBe(200);

    await vi.waitFor(() => expect(lines.filter((l) => l.message === 'http request')).toHaveLength(4));
    const requests = lines.filter((l) => l.message === 'http request');
    expect(requests.every((l) => l.level === 'info')).toBe(true);
    expect(requests[0]?.context).toMatchObject({
      method: 'GET',
      route: '/keys/validate',
      path: '/keys/validate',
      status: 200,
      bytes_in: 0,
      caller: 'unverified', // /keys/validate looks at the key itself, not through authentication
    });
    expect(requests[1]?.context).toMatchObject({
      method: 'POST',
      route: '/userdata/:ns/:scope/:key',
      path: `/userdata/${userId}/USER_PUBLIC/p`,
      status: 200,
      bytes_in: JSON.stringify({ value: { a: 1 } }).length,
      caller: userId,
    });
    expect(requests[1]?.context.bytes_out).toBeGreaterThan(0);
    expect(typeof requests[1]?.context.ms).toBe('number');
    expect(requests[2]?.context).toMatchObject({ route: '/keys/:key', path: '/keys/[key]', status: 204 });
    expect(requests[3]?.context).toMatchObject({ route: '/health', status: 200, caller: 'guest' });
    const text = JSON.stringify(lines);
    expect(text).not.toContain(key);
    expect(text).not.toContain(spare.key);
    expect(text).not.toContain('key=');
  });

  it('logs denials at notice, and each socket opened and closed at info', async () => {
    const { relay, lines } = await start();
    const owner = await relay.runtime.createUser({ deviceName: 'owner' });
    const other = await relay.runtime.createUser({ deviceName: 'other' });
    const denied = await fetch(`${relay.url}/userdata/${owner.userId}/USER_PUBLIC/p`, {
      method: 'POST',
      headers: { 'x-api-key': other.key },
      body: JSON.stringify({ value: { a: 1 } }),
    });
    expect(denied.status).toBe(403);
    await vi.waitFor(() =>
      expect(lines).toContainEqual({
        level: 'notice',
        message: 'http request',
        context: expect.objectContaining({ denied: true, status: 403, caller: other.userId }),
      }),
    );
    expect(lines).toContainEqual({
      level: 'notice',
      message: 'access denied',
      context: expect.objectContaining({
        denied: true,
        caller: other.userId,
        action: 'write',
        object: `USER_PUBLIC/${owner.userId}/p`,
        channel: 'http',
      }),
    });

    const name = 'PUBLIC_RW/_/lobby';
    const single = new WebSocket(`${relay.url.replace('http', 'ws')}/sync/${encodeURIComponent(name)}`, {
      headers: { 'x-api-key': owner.key },
    });
    await new Promise((resolve) => single.once('open', resolve));
    const { ws, permissions } = await muxSocket(relay, other.key);
    ws.send(encodeMuxFrame(name, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }));
    await vi.waitFor(() => expect(permissions).toContainEqual({ doc: name, access: 'read-write' }));
    single.close(1000);
    ws.close(1000);
    await vi.waitFor(() => expect(lines.filter((l) => l.message === 'socket closed')).toHaveLength(2));

    const opened = lines.filter((l) => l.message === 'socket opened');
    expect(opened.map((l) => [l.level, l.context.endpoint, l.context.caller, l.context.doc])).toEqual([
      ['info', 'doc', owner.userId, name],
      ['info', 'mux', other.userId, undefined],
    ]);
    const closed = lines.filter((l) => l.message === 'socket closed').map((l) => l.context);
    const mux = closed.find((c) => c.endpoint === 'mux');
    expect(mux).toMatchObject({ caller: other.userId, code: 1000, frames_in: 1 });
    expect(mux?.frames_out).toBeGreaterThanOrEqual(2); // permission, sync-step1/2
    expect(closed.find((c) => c.endpoint === 'doc')).toMatchObject({ doc: name, code: 1000 });
    const text = JSON.stringify(lines);
    expect(text).not.toContain(owner.key);
    expect(text).not.toContain(other.key);
  });

  it('exports every documented metric at /metrics', async () => {
    const { relay } = await start();
    const { key, userId } = await relay.runtime.createUser({ deviceName: 'd' });
    await fetch(`${relay.url}/userdata/${userId}/USER_PUBLIC/p`, {
      method: 'POST',
      headers: { 'x-api-key': key },
      body: JSON.stringify({ value: { a: 1 } }),
    });
    const { ws } = await muxSocket(relay, key);
    ws.close();
    await relay.hub.flush();
    const text = await (await fetch(`${relay.url}/metrics`)).text();
    for (const name of [
      'scopesync_http_requests_total',
      'scopesync_http_client_errors_total',
      'scopesync_http_server_errors_total',
      'scopesync_http_rate_limited_total',
      'scopesync_http_request_seconds_bucket',
      'scopesync_access_denials_total',
      'scopesync_audit_entries_total',
      'scopesync_relay_store_seconds_count',
      'scopesync_sync_connections',
      'scopesync_sync_messages_received_total',
      'scopesync_sync_messages_sent_total',
      'scopesync_sync_denials_total',
      'scopesync_sync_open_docs',
      'scopesync_docs_loaded_total',
      'scopesync_docs_evicted_total',
      'scopesync_store_commits_total',
      'scopesync_store_commit_failures_total',
      'scopesync_store_writes_total',
      'scopesync_store_commit_seconds_count',
      'scopesync_store_commit_batch_size_bucket',
      'scopesync_compactions_total',
      'scopesync_event_handler_failures_total',
    ]) {
      expect(text).toMatch(new RegExp(`^${name}[ {]`, 'm'));
    }
    expect(text).toMatch(/^scopesync_sync_sockets_opened_total\{endpoint="mux"\} 1$/m);
    expect(text).toMatch(/^scopesync_sync_sockets_opened_total\{endpoint="doc"\} 0$/m);
    expect(text).toMatch(/^scopesync_sync_sockets_closed_total\{endpoint="mux"\} [01]$/m);
    expect(text).toMatch(/^scopesync_events_total\{type="doc-updated"\} [1-9]/m);
    expect(text).toMatch(/^scopesync_events_total\{type="access-changed"\} [1-9]/m);
    expect(text).toMatch(/^scopesync_events_total\{type="level-changed"\} 0$/m);
    expect(text).toMatch(/^scopesync_store_commit_batch_size_count [1-9]/m);
    expect(text).toMatch(/^scopesync_docs_loaded_total [1-9]/m);
  });

  it('lets an admin set a level through PUT /users/<id>/level, audited, applied to open sockets', async () => {
    const { relay } = await start();
    const admin = await relay.runtime.createUser({ deviceName: 'admin', level: Level.Admin });
    const mod = await relay.runtime.createUser({ deviceName: 'mod', level: Level.Moderator });
    const owner = await relay.runtime.createUser({ deviceName: 'owner' });
    const put = (id: string, body: unknown, key?: string) =>
      fetch(`${relay.url}/users/${id}/level`, {
        method: 'PUT',
        headers: key === undefined ? {} : { 'x-api-key': key },
        body: JSON.stringify(body),
      });

    const name = `USER_PUBLIC/${owner.userId}/profile`;
    const created = await fetch(`${relay.url}/userdata/${owner.userId}/USER_PUBLIC/profile`, {
      method: 'POST',
      headers: { 'x-api-key': owner.key },
      body: JSON.stringify({ value: { bio: 'hi' } }),
    });
    expect(created.status).toBe(200);
    const { permissions, ws } = await muxSocket(relay, mod.key);
    ws.send(encodeMuxFrame(name, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }));
    await vi.waitFor(() => expect(permissions).toEqual([{ doc: name, access: 'read-write' }]));

    expect((await put(mod.userId, { level: 1 })).status).toBe(401);
    expect((await put(mod.userId, { level: 1 }, mod.key)).status).toBe(403);
    expect((await put('user_0000000000000000', { level: 1 }, admin.key)).status).toBe(404);
    expect((await put(mod.userId, { level: 7 }, admin.key)).status).toBe(400);
    expect(permissions).toHaveLength(1);
    // When the answer arrives, the socket has been told already.
    expect((await put(mod.userId, { level: 1 }, admin.key)).status).toBe(204);
    expect(permissions).toEqual([
      { doc: name, access: 'read-write' },
      { doc: name, access: 'read' },
    ]);
    ws.close();

    const audit = (await (
      await fetch(`${relay.url}/audit?target=${mod.userId}`, { headers: { 'x-api-key': admin.key } })
    ).json()) as { entries: { accessor: string; action: string; result: string }[] };
    expect(audit.entries.filter((e) => e.action === 'set-level')).toEqual([
      expect.objectContaining({ accessor: mod.userId, result: 'denied' }),
      expect.objectContaining({ accessor: admin.userId, result: 'ok' }),
    ]);
  });
});
