/**
 * A Node client on a durable SQLite store that appends tokens to a document as fast as its
 * store commits them, until it is killed (the client-crash scenario SIGKILLs it mid-write).
 * Run as: node --import tsx --conditions=source crash-child.ts <db> <url> <apiKey> <doc> <prefix> <count>
 * Prints one JSON line per event: {event:'loaded', items}, {event:'written', token} once a
 * token is durable locally (in the outbox), and {event:'acked', items} once the outbox is empty
 * (then it keeps running until killed).
 */
import { createClient } from '@scopesync/client';
import { SqliteDocStore, SqliteKeyValueStore } from '@scopesync/store-sqlite';
import { WebSocket } from 'ws';

const [dbPath, url, apiKey, docName, prefix, countText] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string,
];
const say = (message: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(message)}\n`);
};

const client = await createClient({
  url,
  apiKey,
  WebSocket,
  store: { docs: new SqliteDocStore({ path: dbPath }), kv: new SqliteKeyValueStore({ path: dbPath }) },
  backoff: { initialMs: 50, maxMs: 500 },
  requestTimeoutMs: 5000,
});
const doc = client.doc(docName);
await doc.whenLoaded;
const items = () => doc.doc.getArray<string>('items').toArray();
say({ event: 'loaded', items: items(), pending: doc.pending });
for (let i = 1; i <= Number(countText); i++) {
  const token = `${prefix}.${i}`;
  await doc.transact((d) => d.getArray<string>('items').push([token]));
  say({ event: 'written', token });
}
await doc.whenAcked();
say({ event: 'acked', items: items() });
