import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeMuxFrame, encodeMuxFrame, type Message, parseDocName } from '@scopesync/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { call } from './support/http-client.ts';
import { listeningUrl, spawnCli } from './support/relay-cli.ts';

// An ack means durable: stream tracked updates to a relay running as its own process on
// SQLite, SIGKILL it mid-stream (no graceful shutdown, no flush), restart it on the same data
// dir, and every update the relay acknowledged must be in the document.

let dataDir: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'scopesync-durability-'));
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await rm(dataDir, { recursive: true, force: true });
});

/** Starts `scopesync-relay start` on port 0 and resolves with its URL once it listens. */
async function startRelay(): Promise<{ child: ChildProcess; url: string; exited: Promise<unknown> }> {
  const cli = spawnCli(['start', '--port', '0', '--data-dir', dataDir], {
    STATIC_DIR: join(dataDir, 'no-web-app'),
  });
  children.add(cli.child);
  void cli.finished.then(() => children.delete(cli.child));
  return { child: cli.child, url: await listeningUrl(cli), exited: cli.finished };
}

/** A multiplexed socket that records every frame it receives. */
async function openMux(url: string, key: string) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/sync?key=${key}`);
  const frames: Array<{ docName: string; message: Message }> = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data: Buffer) => {
    frames.push(decodeMuxFrame(new Uint8Array(data)));
    for (const wake of waiters.splice(0)) wake();
  });
  ws.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = async <T extends Message['type']>(type: T): Promise<Extract<Message, { type: T }>> => {
    for (;;) {
      const i = frames.findIndex((f) => f.message.type === type);
      if (i >= 0) return frames.splice(i, 1)[0]?.message as Extract<Message, { type: T }>;
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  const send = (docName: string, message: Message): void => {
    if (ws.readyState === ws.OPEN) ws.send(encodeMuxFrame(docName, message));
  };
  return { ws, frames, next, send, closed, waiters };
}

describe('durability of acknowledged updates', () => {
  it('keeps every acked update across a SIGKILL of the relay process', async () => {
    const first = await startRelay();
    const registered = await call(first.url, 'POST', '/keys', { body: { device_name: 'durability' } });
    expect(registered.status).toBe(200);
    const { key, user_id: userId } = registered.json as { key: string; user_id: string };
    const name = parseDocName(`USER_PUBLIC/${userId}/log`).name;

    const mux = await openMux(first.url, key);
    mux.send(name, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    expect(await mux.next('permission')).toMatchObject({ access: 'read-write' });

    // One client doc; each tracked update appends the number i to an array.
    const local = new Y.Doc();
    const items = local.getArray<number>('items');
    const acked = new Set<number>();
    let sent = 0;
    mux.ws.on('message', (data: Buffer) => {
      const { message } = decodeMuxFrame(new Uint8Array(data));
      if (message.type === 'ack') acked.add(message.ref);
    });
    const pump = (): void => {
      // Keeps sending until the socket dies with the process.
      if (mux.ws.readyState !== mux.ws.OPEN) return;
      // Keep a window of unacknowledged updates in flight, so the kill lands mid-stream.
      while (sent - acked.size < 20) {
        sent += 1;
        let update: Uint8Array | null = null;
        const capture = (u: Uint8Array): void => {
          update = u;
        };
        local.once('update', capture);
        items.push([sent]);
        mux.send(name, { type: 'tracked-update', ref: sent, update: update as unknown as Uint8Array });
      }
      setImmediate(pump);
    };
    pump();
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (acked.size >= 200) resolve();
        else mux.waiters.push(check);
      };
      check();
    });
    first.child.kill('SIGKILL');
    await first.exited;
    await mux.closed;
    // Every ack received, including those on the wire when the process died.
    const ackedAtKill = new Set(acked);
    expect(ackedAtKill.size).toBeGreaterThanOrEqual(200);

    const second = await startRelay();
    try {
      const reader = await openMux(second.url, key);
      reader.send(name, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
      expect(await reader.next('permission')).toMatchObject({ access: 'read-write' });
      reader.send(name, { type: 'sync-step1', stateVector: new Uint8Array([0]) });
      const step2 = await reader.next('sync-step2');
      const restored = new Y.Doc();
      Y.applyUpdate(restored, step2.update);
      const present = new Set(restored.getArray<number>('items').toArray());
      const missing = [...ackedAtKill].filter((ref) => !present.has(ref));
      expect(missing).toEqual([]);
      reader.ws.close();
    } finally {
      second.child.kill('SIGKILL');
      await second.exited;
    }
  });
});
