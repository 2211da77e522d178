import type { ChildMessage, ParentRequest, ServerStats } from './ipc.ts';

/** A server running inside a bench child process. */
export interface ChildServer {
  readonly port: number;
  /** Stops accepting, closes connections and flushes storage. */
  close(): Promise<void>;
  stats?(): Promise<ServerStats>;
}

function send(message: ChildMessage): void {
  process.send?.(message);
}

/**
 * Runs `start` in this child process and serves the parent's requests (gc, rss, stats,
 * close). The child exits when its server is closed or when the parent goes away, so a
 * crashed bench never leaves a server behind.
 */
export function runChild(start: () => Promise<ChildServer>): void {
  process.on('disconnect', () => process.exit(0));
  start().then(
    (server) => {
      process.on('message', (raw: ParentRequest) => {
        void handle(server, raw).catch((error: unknown) => {
          console.error(`bench child: ${raw.type} failed`, error);
          send({ type: 'reply', id: raw.id, value: null });
        });
      });
      send({ type: 'ready', port: server.port });
    },
    (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      console.error('bench child: start failed', error);
      send({ type: 'failed', message });
      setTimeout(() => process.exit(1), 50);
    },
  );
}

async function handle(server: ChildServer, request: ParentRequest): Promise<void> {
  switch (request.type) {
    case 'gc':
      // Children run with --expose-gc so an RSS reading is not a matter of GC timing.
      (globalThis as { gc?: () => void }).gc?.();
      send({ type: 'reply', id: request.id, value: null });
      return;
    case 'rss':
      send({ type: 'reply', id: request.id, value: process.memoryUsage.rss() });
      return;
    case 'stats':
      send({ type: 'reply', id: request.id, value: server.stats ? await server.stats() : {} });
      return;
    case 'close':
      await server.close();
      send({ type: 'reply', id: request.id, value: null });
      setTimeout(() => process.exit(0), 20);
      return;
  }
}
