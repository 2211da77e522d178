import { decodeMuxFrame, encodeMuxFrame, type Message } from '@scopesync/core';
import WebSocket from 'ws';
import { WAIT_MS } from './sync-sockets.ts';

// Sockets for the authentication tests: opened with a credential in a header, the subprotocol
// or the query, recording how the upgrade was answered and how the socket closed.

/** How a credential travels on an upgrade. */
export type Transport =
  | { readonly header: string }
  | { readonly subprotocol: string }
  | { readonly query: string }
  | { readonly none: true };

/** An opened socket, or the HTTP status its upgrade was refused with. */
export type Opened =
  | { readonly ok: true; readonly socket: AuthSocket }
  | { readonly ok: false; readonly status: number };

/** One open sync socket: its frames (decoded for /sync), how it closed, and its negotiated subprotocol. */
export interface AuthSocket {
  readonly ws: WebSocket;
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** The next multiplexed message matching `match` (waits up to WAIT_MS). */
  next(match: (m: Message) => boolean): Promise<Message>;
  send(doc: string, message: Message): void;
}

/** Opens `path` on `wsUrl` with the credential carried as `transport`. Never rejects for a refused upgrade. */
export function openSocket(wsUrl: string, path: string, transport: Transport): Promise<Opened> {
  let url = `${wsUrl}${path}`;
  const headers: Record<string, string> = {};
  let protocols: string[] | undefined;
  if ('header' in transport) headers.authorization = `Bearer ${transport.header}`;
  if ('subprotocol' in transport) protocols = ['scopesync', `bearer.${transport.subprotocol}`];
  if ('query' in transport)
    url += `${path.includes('?') ? '&' : '?'}key=${encodeURIComponent(transport.query)}`;
  const ws = new WebSocket(url, protocols, { headers });
  const frames: Message[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data: Buffer) => {
    if (path.startsWith('/sync/')) return;
    frames.push(decodeMuxFrame(new Uint8Array(data)).message);
    for (const wake of waiters.splice(0)) wake();
  });
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  const next = async (match: (m: Message) => boolean): Promise<Message> => {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const i = frames.findIndex(match);
      if (i >= 0) return frames.splice(i, 1)[0] as Message;
      if (Date.now() > deadline) throw new Error(`no matching frame within ${WAIT_MS} ms`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  };
  const socket: AuthSocket = { ws, closed, next, send: (doc, m) => ws.send(encodeMuxFrame(doc, m)) };
  return new Promise<Opened>((resolve, reject) => {
    ws.once('open', () => resolve({ ok: true, socket }));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ ok: false, status: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.once('error', (error) => reject(error));
  });
}

/** Opens a socket that must open; throws with the refusal's status otherwise. */
export async function mustOpen(wsUrl: string, path: string, transport: Transport): Promise<AuthSocket> {
  const opened = await openSocket(wsUrl, path, transport);
  if (!opened.ok) throw new Error(`upgrade of ${path} refused with ${opened.status}`);
  return opened.socket;
}
