/**
 * The page of browser-client.test.ts: the scopesync client bundled for Chromium with its
 * defaults (IndexedDB store, the browser's WebSocket and fetch), driven through `window.api`.
 */
import { createClient, type DocHandle, type SyncClient } from '@scopesync/client';

interface PageApi {
  /** Creates the client and opens the doc; resolves with the user id and what the doc holds. */
  start(): Promise<{ userId: string | undefined; text: string; pending: number }>;
  /** Appends text; resolves once it is durable in IndexedDB. */
  write(text: string): Promise<number>;
  /** Resolves once the relay acknowledged every edit. */
  acked(): Promise<string>;
  text(): string;
  status(): string;
}

const relay = new URLSearchParams(location.search).get('relay') ?? '';
let client: SyncClient | undefined;
let doc: DocHandle | undefined;

const api: PageApi = {
  async start() {
    client = await createClient({
      url: relay,
      deviceName: 'chromium',
      backoff: { initialMs: 50, maxMs: 500 },
    });
    doc = client.doc(`USER_PUBLIC/${client.userId}/browser-notes`);
    await doc.whenLoaded;
    return { userId: client.userId, text: api.text(), pending: doc.pending };
  },
  async write(text) {
    const d = doc as DocHandle;
    await d.transact((y) => y.getText('t').insert(y.getText('t').length, text));
    return d.pending;
  },
  async acked() {
    await (doc as DocHandle).whenAcked();
    return api.text();
  },
  text: () => doc?.doc.getText('t').toString() ?? '',
  status: () => client?.status ?? 'none',
};

(globalThis as unknown as { api: PageApi }).api = api;
