/**
 * Child process: Hocuspocus 3.x with its SQLite extension (stock settings: 2 s store
 * debounce, 10 s max), plus one HTTP route for the durability workload that writes a
 * value through a direct connection and answers once Hocuspocus has run its store hook.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type * as Y from 'yjs';
import { runChild } from './child-runtime.ts';

// Loaded through require: the packages' "source" export condition points at TypeScript
// sources that are not meant to run or type-check outside their own repository.
interface DirectConnection {
  transact(fn: (doc: Y.Doc) => void): Promise<void>;
  disconnect(): Promise<void>;
}
interface Hocuspocus {
  openDirectConnection(name: string, context?: unknown): Promise<DirectConnection>;
}
interface HocuspocusServer {
  readonly hocuspocus: Hocuspocus;
  readonly address: { port: number };
  listen(): Promise<unknown>;
  destroy(): Promise<void>;
}
interface OnRequestPayload {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
}
const require = createRequire(import.meta.url);
const { Server } = require('@hocuspocus/server') as {
  Server: new (configuration: Record<string, unknown>) => HocuspocusServer;
};
/** The SQLite extension, as far as the bench looks into it: its connection, once configured. */
interface SqliteExtension {
  readonly db?: {
    get(sql: string, callback: (error: Error | null, row: unknown) => void): unknown;
  };
}
const { SQLite } = require('@hocuspocus/extension-sqlite') as {
  SQLite: new (configuration: { database: string }) => SqliteExtension;
};

/** How long the SQLite extension may take to create its table before the child gives up. */
const SCHEMA_TIMEOUT_MS = 10_000;

/**
 * Resolves once the SQLite extension's table exists. Its `onConfigure` starts the CREATE TABLE
 * without awaiting it, so a client that connects first was refused with permission-denied
 * ("no such table: documents" in the server's log), about one run in three of workload 1.
 * Take no socket before, as a deployment behind a health check would.
 */
async function schemaReady(extension: SqliteExtension): Promise<void> {
  const deadline = Date.now() + SCHEMA_TIMEOUT_MS;
  const tableExists = (): Promise<boolean> =>
    new Promise((resolve) => {
      if (extension.db === undefined) resolve(false);
      else
        extension.db.get(
          "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'documents'",
          (error, row) => resolve(error === null && row !== undefined),
        );
    });
  while (!(await tableExists())) {
    if (Date.now() > deadline)
      throw new Error(`the SQLite extension created no table within ${SCHEMA_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const WRITE_PREFIX = '/bench-write/';

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

runChild(async () => {
  const database = process.env.BENCH_SQLITE_FILE;
  if (!database) throw new Error('BENCH_SQLITE_FILE is not set');
  let server: HocuspocusServer | null = null;
  const benchWrites = {
    async onRequest({ request, response }: OnRequestPayload): Promise<void> {
      if (request.method !== 'POST' || !request.url?.startsWith(WRITE_PREFIX) || server === null) return;
      const name = decodeURIComponent(request.url.slice(WRITE_PREFIX.length));
      const { value } = JSON.parse(await readBody(request)) as { value: Record<string, unknown> };
      const connection = await server.hocuspocus.openDirectConnection(name, {});
      // transact() runs onStoreDocument at once (no debounce) and awaits it.
      await connection.transact((doc) => {
        const data = doc.getMap('data');
        for (const [field, fieldValue] of Object.entries(value)) data.set(field, fieldValue);
      });
      await connection.disconnect();
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{}');
      // Hocuspocus's convention: rejecting with nothing stops the default response.
      return Promise.reject(null);
    },
  };
  const sqlite = new SQLite({ database });
  server = new Server({
    port: 0,
    address: '127.0.0.1',
    quiet: true,
    stopOnSignals: false,
    extensions: [sqlite, benchWrites],
  });
  await server.listen();
  await schemaReady(sqlite);
  const running = server;
  return {
    port: running.address.port,
    async close() {
      // destroy() stores every loaded document before it resolves.
      await running.destroy();
      // The SQLite extension does not await its INSERT; give the last ones time to land.
      await new Promise((resolve) => setTimeout(resolve, 500));
    },
  };
});
