import { EventEmitter } from 'node:events';
import { isSyncError } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { Metrics } from '../metrics.ts';
import { SendBudget, type SessionHandler, type SessionLimits, SocketSession } from './socket-session.ts';

const LIMITS: SessionLimits = {
  maxPendingFrames: 100,
  maxBufferedBytes: 1000,
  maxFramesPerSecond: 1000,
  maxAwarenessBytes: 100,
};

/** A stand-in for an open `ws` socket whose send buffer the test sets. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readonly CLOSING = 2;
  readonly CLOSED = 3;
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: Uint8Array[] = [];
  closedWith: number | null = null;
  send(frame: Uint8Array, done: (error?: Error) => void): void {
    this.sent.push(frame);
    setImmediate(() => done());
  }
  close(code: number): void {
    this.closedWith = code;
    this.readyState = this.CLOSING;
  }
}

function session(limits: Partial<SessionLimits> = {}, budget?: SendBudget): SocketSession {
  return new SocketSession({
    id: 1,
    endpoint: 'mux',
    caller: { kind: 'guest' },
    credential: null,
    shared: {
      limits: { ...LIMITS, ...limits },
      log: () => undefined,
      framesOut: new Metrics().counter('frames', 'frames'),
      ...(budget === undefined ? {} : { sendBudget: budget }),
    },
  });
}

const IGNORE: SessionHandler = { frame: async () => undefined, closed: () => undefined };

describe('SocketSession', () => {
  it('lets the event loop run between queued frames once a frame used up its time slice', async () => {
    const s = session();
    let otherWorkRan = false;
    void s.enqueue(async () => {
      setImmediate(() => {
        otherWorkRan = true;
      });
      // A frame that takes a while (SyncStep1 against a large document, say).
      const until = performance.now() + 5;
      while (performance.now() < until) {
        // busy
      }
    });
    let seenBySecond: boolean | null = null;
    await s.enqueue(async () => {
      seenBySecond = otherWorkRan;
    });
    expect(seenBySecond).toBe(true);
  });

  it('runs a burst of quick queued frames without a loop turn between each', async () => {
    const s = session();
    let turns = 0;
    const seen: number[] = [];
    for (let i = 0; i < 50; i++)
      void s.enqueue(async () => {
        seen.push(turns);
        setImmediate(() => {
          turns += 1;
        });
      });
    await s.idle();
    // A loop turn before every frame would show each frame one more finished turn than the last.
    const withoutTurn = seen.filter((t, i) => i > 0 && t === seen[i - 1]).length;
    expect(withoutTurn).toBeGreaterThan(0);
  });

  it('is congested once a quarter of its send buffer bound is queued', () => {
    const s = session();
    const ws = new FakeSocket();
    s.attach(ws as unknown as WebSocket, IGNORE);
    expect(s.congested).toBe(false);
    ws.bufferedAmount = 251;
    expect(s.congested).toBe(true);
  });

  it('bounds the awareness bytes it holds over all its documents', () => {
    const s = session();
    s.holdAwareness('a', 60);
    s.holdAwareness('a', 70); // replaces, not adds
    const error = (() => {
      try {
        s.holdAwareness('b', 40);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(isSyncError(error, 'TooLarge')).toBe(true);
    s.holdAwareness('a', 0); // left the document
    s.holdAwareness('b', 90);
  });

  it('closes a socket with unsent data when the relay-wide send budget is spent', async () => {
    const budget = new SendBudget(10);
    const slow = session({}, budget);
    const slowWs = new FakeSocket();
    slow.attach(slowWs as unknown as WebSocket, IGNORE);
    slow.sendFrame(new Uint8Array(8));
    expect(budget.queued).toBe(8);
    slowWs.bufferedAmount = 8;
    slow.sendFrame(new Uint8Array(8));
    expect(slowWs.closedWith).toBe(4503);
    // A socket that keeps up still gets its frame, and the budget comes back once written.
    const fast = session({}, budget);
    const fastWs = new FakeSocket();
    fast.attach(fastWs as unknown as WebSocket, IGNORE);
    fast.sendFrame(new Uint8Array(8));
    expect(fastWs.sent).toHaveLength(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(budget.queued).toBe(0);
  });
});
