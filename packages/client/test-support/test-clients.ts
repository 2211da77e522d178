import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { type ClientStore, indexedDbClientStore } from '../src/client-store.ts';
import { type ClientOptions, createClient } from '../src/create-client.ts';
import type { SyncClient } from '../src/sync-client.ts';
import type { FakeRelay } from './fake-relay.ts';

/** A fresh IndexedDB "profile" (fake-indexeddb), reusable across client restarts. */
export function profile(): () => ClientStore {
  const indexedDB = new IDBFactory();
  return () => indexedDbClientStore({ name: 'scopesync', indexedDB, IDBKeyRange });
}

/** Clients of a unit test against a {@link FakeRelay}; `closeAll` in afterEach. */
export interface TestClients {
  start(relay: FakeRelay, options: Partial<ClientOptions> & { store: ClientStore }): Promise<SyncClient>;
  stop(client: SyncClient): Promise<void>;
  closeAll(): Promise<void>;
}

/** Creates clients with fast reconnects, over the fake relay's WebSocket and fetch, plus `defaults`. */
export function testClients(defaults: Partial<ClientOptions> = {}): TestClients {
  let clients: SyncClient[] = [];
  return {
    async start(relay, options) {
      const client = await createClient({
        url: 'http://relay.test',
        WebSocket: relay.WebSocket,
        fetch: relay.fetch,
        backoff: { initialMs: 5, maxMs: 20 },
        ...defaults,
        ...options,
      });
      clients.push(client);
      return client;
    },
    async stop(client) {
      await client.close();
      clients = clients.filter((c) => c !== client);
    },
    async closeAll() {
      for (const c of clients) await c.close();
      clients = [];
    },
  };
}
