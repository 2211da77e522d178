/**
 * A Node client with a durable SQLite store, driven over stdin/stdout by
 * client-sqlite-restart.test.ts (which SIGKILLs it). Run as:
 *   node --import tsx --conditions=source client-sqlite-child.ts <db> <url> <apiKey> <doc>
 * Commands (one JSON object per line): {op:'synced'} {op:'write', text} {op:'acked'}.
 * Answers: {event:'loaded', pending, text}, {event:'synced'}, {event:'written', pending}, {event:'acked'}.
 */
import { createInterface } from 'node:readline';
import { createClient } from '@scopesync/client';
import { SqliteDocStore, SqliteKeyValueStore } from '@scopesync/store-sqlite';
import { WebSocket } from 'ws';

const [dbPath, url, apiKey, docName] = process.argv.slice(2) as [string, string, string, string];
const say = (message: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(message)}\n`);
};

const client = await createClient({
  url,
  apiKey,
  WebSocket,
  store: { docs: new SqliteDocStore({ path: dbPath }), kv: new SqliteKeyValueStore({ path: dbPath }) },
  backoff: { initialMs: 20, maxMs: 200 },
  requestTimeoutMs: 2000,
});
const doc = client.doc(docName);
await doc.whenLoaded;
say({ event: 'loaded', pending: doc.pending, text: doc.doc.getText('t').toString() });

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as { op: string; text?: string };
  if (command.op === 'synced') {
    await doc.whenSynced;
    say({ event: 'synced' });
  } else if (command.op === 'write') {
    // Resolves once the edit (and so its outbox entry) is committed to SQLite.
    await doc.transact((d) => d.getText('t').insert(d.getText('t').length, command.text ?? ''));
    say({ event: 'written', pending: doc.pending });
  } else if (command.op === 'acked') {
    await doc.whenAcked();
    say({ event: 'acked', text: doc.doc.getText('t').toString() });
  }
}
await client.close();
