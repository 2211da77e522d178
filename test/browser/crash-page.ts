/**
 * The page of the chaos suite's browser crash (test/chaos/browser-crash.ts): the scopesync
 * client with its browser defaults (IndexedDB store, the browser's WebSocket and fetch) appends
 * tokens to a document as fast as IndexedDB commits them, telling the test each one that is
 * durable, until its tab is closed or its browser killed.
 */
import { createClient, type DocHandle } from '@scopesync/client';

interface CrashPageApi {
  /** Opens the client (key and doc from the query) and loads the doc; resolves with its items and outbox. */
  start(): Promise<{ items: string[]; pending: number }>;
  /** Appends `count` tokens `<prefix>.<i>`, reporting each once it is committed to IndexedDB. */
  run(prefix: string, count: number): Promise<void>;
  /** Resolves with the items once the relay acknowledged every edit. */
  drained(): Promise<string[]>;
}

const query = new URLSearchParams(location.search);
let doc: DocHandle | undefined;
const items = (): string[] => doc?.doc.getArray<string>('items').toArray() ?? [];
/** Provided by the test (page.exposeFunction): a token is durable in IndexedDB. */
const report = (globalThis as unknown as { reportDurable: (token: string) => Promise<void> }).reportDurable;

const api: CrashPageApi = {
  async start() {
    const client = await createClient({
      url: query.get('relay') ?? '',
      apiKey: query.get('key') ?? '',
      backoff: { initialMs: 50, maxMs: 500 },
      requestTimeoutMs: 5000,
    });
    doc = client.doc(query.get('doc') ?? '');
    await doc.whenLoaded;
    return { items: items(), pending: doc.pending };
  },
  async run(prefix, count) {
    const d = doc as DocHandle;
    for (let i = 1; i <= count; i++) {
      const token = `${prefix}.${i}`;
      // Resolves once the edit is stored (in the outbox): durable from here on.
      await d.transact((y) => y.getArray<string>('items').push([token]));
      void report(token);
    }
  },
  async drained() {
    await (doc as DocHandle).whenAcked();
    return items();
  },
};

(globalThis as unknown as { api: CrashPageApi }).api = api;
