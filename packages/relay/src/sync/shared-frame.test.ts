import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { IGNORE_FRAMES, relaxedSessionShared } from './session-test-settings.ts';
import { SharedFrame } from './shared-frame.ts';
import { SendBudget, SocketSession } from './socket-session.ts';

/** Lengths on both sides of each WebSocket length encoding (7 bits, 16 bits, 64 bits). */
const LENGTHS = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000];

function payload(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

interface Harness {
  readonly sessions: SocketSession[];
  readonly serverSockets: WebSocket[];
  readonly received: Uint8Array[][];
  readonly budget: SendBudget;
  close(): Promise<void>;
}

const open: Harness[] = [];

afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
});

/** A real `ws` server on loopback with `readers` clients, each server socket in a SocketSession. */
async function connect(readers: number, perMessageDeflate = false): Promise<Harness> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const { port } = wss.address() as AddressInfo;
  const budget = new SendBudget(1 << 24);
  const sessions: SocketSession[] = [];
  const serverSockets: WebSocket[] = [];
  wss.on('connection', (ws) => {
    const session = new SocketSession({
      id: sessions.length + 1,
      endpoint: 'doc',
      caller: { kind: 'guest' },
      credential: null,
      shared: relaxedSessionShared(budget),
    });
    session.attach(ws, IGNORE_FRAMES);
    sessions.push(session);
    serverSockets.push(ws);
  });
  const clients: WebSocket[] = [];
  const received: Uint8Array[][] = [];
  for (let i = 0; i < readers; i++) {
    const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate });
    const got: Uint8Array[] = [];
    received.push(got);
    client.on('message', (data: RawData) => got.push(new Uint8Array(data as Buffer)));
    await new Promise<void>((resolve, reject) => {
      client.once('open', () => resolve());
      client.once('error', reject);
    });
    clients.push(client);
  }
  while (sessions.length < readers) await new Promise((resolve) => setImmediate(resolve));
  const harness: Harness = {
    sessions,
    serverSockets,
    received,
    budget,
    async close() {
      for (const c of clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
  open.push(harness);
  return harness;
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 2));
}

/** Sends every length as a broadcast to all sessions, each followed by a frame of each socket's own. */
function sendAll(h: Harness): Uint8Array[] {
  const expected: Uint8Array[] = [];
  LENGTHS.forEach((length, i) => {
    const shared = new SharedFrame(payload(length, i));
    const own = payload(3, 100 + i);
    for (const s of h.sessions) {
      s.sendShared(shared);
      s.sendFrame(own);
    }
    expected.push(shared.bytes, own);
  });
  return expected;
}

describe('SharedFrame', () => {
  it('reaches every reader whole and in send order, across every frame length encoding', async () => {
    const h = await connect(3);
    const expected = sendAll(h);
    await until(() => h.received.every((got) => got.length === expected.length));
    for (const got of h.received) expect(got).toEqual(expected);
    // Every byte handed to the sockets was written out and given back to the relay's budget.
    await until(() => h.budget.queued === 0);
  });

  it('is written to each reader socket as one prebuilt frame, not framed again per socket by ws', async () => {
    const h = await connect(3);
    const perSocketSends = h.serverSockets.map((ws) => vi.spyOn(ws, 'send'));
    const frame = new SharedFrame(payload(200, 7));
    for (const s of h.sessions) s.sendShared(frame);
    await until(() => h.received.every((got) => got.length === 1));
    for (const got of h.received) expect(got[0]).toEqual(frame.bytes);
    for (const send of perSocketSends) expect(send).not.toHaveBeenCalled();
  });

  it('goes through ws when the socket compresses its messages', async () => {
    const h = await connect(2, true);
    const perSocketSends = h.serverSockets.map((ws) => vi.spyOn(ws, 'send'));
    const expected = sendAll(h);
    await until(() => h.received.every((got) => got.length === expected.length));
    for (const got of h.received) expect(got).toEqual(expected);
    for (const send of perSocketSends) expect(send).toHaveBeenCalled();
  });
});
