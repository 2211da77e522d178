import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { type ErrorKind, httpStatusOf } from '@scopesync/core';
import type { WebSocket, WebSocketServer } from 'ws';

/** Answers an upgrade with a plain HTTP error and closes the socket: never open-then-close. */
export function refuseUpgrade(socket: Duplex, kind: ErrorKind, message: string): void {
  if (socket.destroyed || !socket.writable) return;
  const status = httpStatusOf(kind);
  const body = JSON.stringify({ error: kind, message });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * What to do when a handshake completes or is abandoned: one object for every socket of an
 * endpoint, handed the socket's own context, rather than two closures made per socket.
 */
export interface UpgradeHandler<C> {
  /** The handshake completed: `ws` is the open socket. */
  accept(context: C, ws: WebSocket): void;
  /** The TCP socket died before the handshake completed. */
  abandon(context: C): void;
}

/**
 * Finishes the WebSocket handshake: `handler.accept` receives the open socket; `handler.abandon`
 * cleans up when the TCP socket died before the handshake completed.
 */
export function completeUpgrade<C>(
  wss: WebSocketServer,
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  context: C,
  handler: UpgradeHandler<C>,
): void {
  let accepted = false;
  const onClose = (): void => {
    if (!accepted) handler.abandon(context);
  };
  socket.once('close', onClose);
  wss.handleUpgrade(request, socket, head, (ws) => {
    accepted = true;
    socket.off('close', onClose);
    handler.accept(context, ws);
  });
}
