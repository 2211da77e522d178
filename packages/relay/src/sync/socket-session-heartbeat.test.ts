import { afterEach, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { closeSessions, connectSession, until } from './session-test-socket.ts';

afterEach(closeSessions);

/** Resolves with the close code the client saw. */
function closeOf(client: WebSocket): Promise<number> {
  return new Promise((resolve) => client.once('close', (code) => resolve(code)));
}

/** Counts what `emitter` emits of `event`. */
function counter(emitter: WebSocket, event: 'ping' | 'pong' | 'message'): () => number {
  let count = 0;
  emitter.on(event, () => {
    count += 1;
  });
  return () => count;
}

describe('SocketSession heartbeat', () => {
  it('drops a socket that answered no ping and sent nothing since the previous one', async () => {
    const { session, client } = await connectSession(undefined, { autoPong: false });
    const pings = counter(client, 'ping');
    const closed = closeOf(client);
    session.heartbeat();
    await until(() => pings() === 1);
    session.heartbeat();
    // Cut without a close handshake.
    expect(await closed).toBe(1006);
  });

  it('keeps a socket that answers every ping', async () => {
    const { session, client, ws } = await connectSession();
    const pongs = counter(ws, 'pong');
    const closed = closeOf(client);
    for (let round = 1; round <= 3; round++) {
      session.heartbeat();
      await Promise.race([until(() => pongs() === round), closed]);
    }
    session.heartbeat();
    expect(client.readyState).toBe(client.OPEN);
    expect(pongs()).toBe(3);
  });

  it('takes any frame read since the last ping as a sign of life, not only the pong', async () => {
    const { session, client, ws } = await connectSession(undefined, { autoPong: false });
    const pings = counter(client, 'ping');
    const frames = counter(ws, 'message');
    const closed = closeOf(client);
    session.heartbeat();
    await until(() => pings() === 1);
    client.send(new Uint8Array([1, 2, 3]));
    await until(() => frames() === 1);
    session.heartbeat();
    await Promise.race([until(() => pings() === 2), closed]);
    expect(client.readyState).toBe(client.OPEN);
    // Nothing since the second ping: the third heartbeat drops it.
    session.heartbeat();
    expect(await closed).toBe(1006);
  });
});
