import type { AddressInfo, Socket } from 'node:net';
import { type ClientOptions, type RawData, WebSocket, WebSocketServer } from 'ws';
import { IGNORE_FRAMES, relaxedSessionShared } from './session-test-settings.ts';
import { type SendBudget, SocketSession } from './socket-session.ts';

/** One real `ws` connection on loopback, its relay side attached to a {@link SocketSession}. */
export interface SessionPair {
  readonly session: SocketSession;
  /** The relay side's `ws` socket. */
  readonly ws: WebSocket;
  /** The relay side's TCP socket, under `ws`. */
  readonly tcp: Socket;
  readonly received: Uint8Array[];
  readonly client: WebSocket;
}

const cleanups: Array<() => Promise<void>> = [];

/** Closes every connection {@link connectSession} opened; for `afterEach`. */
export async function closeSessions(): Promise<void> {
  for (const cleanup of cleanups.splice(0)) await cleanup();
}

/**
 * Opens a multiplexed guest socket whose limits stay out of the way (a `budget` when the test
 * watches it), with the client's own `ws` options.
 */
export async function connectSession(
  budget?: SendBudget,
  clientOptions: ClientOptions = {},
): Promise<SessionPair> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const accepted = new Promise<{ session: SocketSession; ws: WebSocket; tcp: Socket }>((resolve) =>
    wss.once('connection', (ws) => {
      const session = new SocketSession({
        id: 1,
        endpoint: 'mux',
        caller: { kind: 'guest' },
        credential: null,
        shared: relaxedSessionShared(budget),
      });
      session.attach(ws, IGNORE_FRAMES);
      resolve({ session, ws, tcp: (ws as unknown as { _socket: Socket })._socket });
    }),
  );
  const { port } = wss.address() as AddressInfo;
  const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, ...clientOptions });
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

/** Resolves once `check` holds, polling every 2 ms. */
export async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 2));
}
