import type { Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { closeSessions, connectSession as connect, until } from './session-test-socket.ts';
import { SharedFrame } from './shared-frame.ts';
import { SendBudget } from './socket-session.ts';

afterEach(closeSessions);

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
