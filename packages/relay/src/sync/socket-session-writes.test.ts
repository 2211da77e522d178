import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { IGNORE_FRAMES, relaxedSessionShared } from './session-test-settings.ts';
import { SharedFrame } from './shared-frame.ts';
import { SendBudget, SocketSession } from './socket-session.ts';

interface Pair {
  readonly session: SocketSession;
  /** The relay side's TCP socket, under `ws`. */
  readonly tcp: Socket;
  readonly received: Uint8Array[];
  readonly client: WebSocket;
}

/** A multiplexed guest socket whose limits stay out of the way. */
const SHARED = relaxedSessionShared();
const SESSION = {
  id: 1,
  endpoint: 'mux',
  caller: { kind: 'guest' },
  credential: null,
  shared: SHARED,
} as const;

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** One real `ws` connection on loopback; the server side attached to a SocketSession. */
async function connect(budget?: SendBudget): Promise<Pair> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const accepted = new Promise<{ session: SocketSession; tcp: Socket }>((resolve) =>
    wss.once('connection', (ws) => {
      const shared = relaxedSessionShared(budget);
      const session = new SocketSession({ ...SESSION, shared });
      session.attach(ws, IGNORE_FRAMES);
      resolve({ session, tcp: (ws as unknown as { _socket: Socket })._socket });
    }),
  );
  const { port } = wss.address() as AddressInfo;
  const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
  const received: Uint8Array[] = [];
  client.on('message', (data: RawData) => received.push(new Uint8Array(data as Buffer)));
  await new Promise<void>((resolve, reject) => {
    client.once('open', () => resolve());
    client.once('error', reject);
  });
  cleanups.push(async () => {
    client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  return { ...(await accepted), received, client };
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 2));
}

function frame(seed: number, length = 20): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (seed * 7 + i) & 0xff);
}

/** Spies on the relay side's writes to its TCP socket (each one a system call). */
function kernelWrites(tcp: Socket): () => number {
  const writev = vi.spyOn(tcp as unknown as { _writev: () => void }, '_writev');
  const write = vi.spyOn(tcp as unknown as { _write: () => void }, '_write');
  return () => writev.mock.calls.length + write.mock.calls.length;
}

describe('SocketSession writes', () => {
  it('hands what a backlog of its own frames sends in one turn to the kernel in one write, whole and in order', async () => {
    const { session, tcp, received } = await connect();
    // Spied after the upgrade, so only the session's own frames count.
    const writes = kernelWrites(tcp);
    const expected: Uint8Array[] = [];
    // The clock stands still, so the burst runs in one time slice (see the session's FRAME_SLICE_MS).
    const clock = vi.spyOn(performance, 'now').mockReturnValue(0);
    // A burst of subscribes queued at once, each answered with frames of its own and a broadcast.
    const queued: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) {
      const own = frame(i);
      const shared = i % 3 === 0 ? new SharedFrame(frame(100 + i, 200)) : null;
      expected.push(own, ...(shared ? [shared.bytes] : []));
      queued.push(
        session.enqueue(async () => {
          session.sendFrame(own);
          if (shared) session.sendShared(shared);
        }),
      );
    }
    await Promise.all(queued);
    clock.mockRestore();
    await until(() => received.length === expected.length);
    expect(received).toEqual(expected);
    expect(writes()).toBe(1);
  });

  it('writes a frame sent while nothing of its own is queued at once, before the caller goes on', async () => {
    // What an HTTP call that changes access relies on: its socket is told before it answers.
    const { session, tcp, received } = await connect();
    const writes = kernelWrites(tcp);
    session.sendFrame(frame(1));
    expect(writes()).toBe(1);
    session.sendFrame(frame(2));
    expect(writes()).toBe(2);
    await until(() => received.length === 2);
    expect(received).toEqual([frame(1), frame(2)]);
  });

  it('does not take the frames held back for its own turn as a slow reader when the send budget runs short', async () => {
    // Room for one frame: the second goes past the budget. A reader that has taken everything
    // before this turn keeps its socket (as when each frame went straight to the kernel).
    const budget = new SendBudget(30);
    const { session, received, client } = await connect(budget);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    void session.enqueue(async () => session.sendFrame(frame(1)));
    void session.enqueue(async () => session.sendFrame(frame(2)));
    await Promise.race([until(() => received.length === 2), closed]);
    expect(client.readyState).toBe(WebSocket.OPEN);
    expect(received).toEqual([frame(1), frame(2)]);
    await until(() => budget.queued === 0);
  });
});
