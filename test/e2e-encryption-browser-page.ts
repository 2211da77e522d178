/**
 * The page of e2e-encryption-browser.test.ts: the scopesync client bundled for Chromium with its
 * defaults (IndexedDB store, WebCrypto, the browser's WebSocket and fetch), writing a private
 * doc through the built-in end-to-end encryption, driven through `window.api`.
 */
import { createClient, type DocHandle, type SyncClient } from '@scopesync/client';

interface PageApi {
  /** Creates the client (registering, or resuming the stored key) and opens the private notes. */
  start(): Promise<{ userId: string | undefined; seedLocation: string; text: string }>;
  /** Appends text and waits for the relay's ack. */
  write(text: string): Promise<void>;
  /** The recovery phrase of this browser's user. */
  phrase(): Promise<string>;
  text(): string;
  /**
   * Looks through every record of every IndexedDB database of the page for each needle (bytes
   * in strings, Uint8Arrays and ArrayBuffers), and reports what the device key is.
   */
  scan(needles: number[][]): Promise<{ found: boolean[]; deviceKey: string }>;
}

const relay = new URLSearchParams(location.search).get('relay') ?? '';
let client: SyncClient | undefined;
let notes: DocHandle | undefined;

function request<T>(req: IDBRequest): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    req.onsuccess = () => resolve(req.result as T);
    req.onerror = () => reject(req.error);
  });
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

const api: PageApi = {
  async start() {
    client = await createClient({
      url: relay,
      deviceName: 'chromium',
      backoff: { initialMs: 50, maxMs: 500 },
    });
    notes = client.doc(`USER_PRIVATE/${client.userId}/notes`);
    await notes.whenLoaded;
    return { userId: client.userId, seedLocation: client.encryption.seedLocation, text: api.text() };
  },
  async write(text) {
    const d = notes as DocHandle;
    await d.transact((y) => y.getText('t').insert(y.getText('t').length, text));
    await d.whenAcked();
  },
  phrase: () => (client as SyncClient).encryption.exportRecoveryPhrase(),
  text: () => notes?.doc.getText('t').toString() ?? '',
  async scan(needles) {
    const wanted = needles.map((n) => new Uint8Array(n));
    const found = wanted.map(() => false);
    let deviceKey = 'none';
    const encoder = new TextEncoder();
    const look = (bytes: Uint8Array): void => {
      wanted.forEach((n, i) => {
        if (!found[i] && contains(bytes, n)) found[i] = true;
      });
    };
    const walk = (value: unknown): void => {
      if (value === null || value === undefined) return;
      if (typeof value === 'string') look(encoder.encode(value));
      else if (value instanceof Uint8Array) look(value);
      else if (value instanceof ArrayBuffer) look(new Uint8Array(value));
      else if (value instanceof CryptoKey) return;
      else if (typeof value === 'object') for (const field of Object.values(value)) walk(field);
    };
    for (const info of await indexedDB.databases()) {
      const db = await request<IDBDatabase>(indexedDB.open(info.name as string));
      for (const name of Array.from(db.objectStoreNames)) {
        const store = db.transaction(name, 'readonly').objectStore(name);
        const values = await request<unknown[]>(store.getAll());
        for (const value of values) {
          walk(value);
          const row = value as { key?: unknown; value?: unknown };
          if (row.key === 'device-key' && row.value instanceof CryptoKey) {
            deviceKey = `CryptoKey ${row.value.algorithm.name} extractable=${row.value.extractable}`;
          }
        }
      }
      db.close();
    }
    return { found, deviceKey };
  },
};

(globalThis as unknown as { api: PageApi }).api = api;
