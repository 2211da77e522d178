/**
 * Child process: the reference y-websocket 2.x server (`setupWSConnection` from its
 * bin/utils), with its y-leveldb persistence on when YPERSISTENCE is set.
 */

import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { type WebSocket, WebSocketServer } from 'ws';
import { runChild } from './child-runtime.ts';

interface YWebsocketUtils {
  setupWSConnection(conn: WebSocket, req: IncomingMessage): void;
  getPersistence(): { provider: { destroy(): Promise<void> } } | null;
}

runChild(async () => {
  // bin/utils reads YPERSISTENCE when it is first required.
  const utils = createRequire(import.meta.url)('y-websocket-server/bin/utils') as YWebsocketUtils;
  const http = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('okay');
  });
  const wss = new WebSocketServer({ noServer: true });
  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => utils.setupWSConnection(ws, req));
  http.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const address = http.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
      // Waits for y-leveldb's queued writes, then closes the database.
      await utils.getPersistence()?.provider.destroy();
    },
  };
});
