import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ClientStore,
  createClient,
  type DocHandle,
  indexedDbClientStore,
  memoryClientStore,
  type SyncClient,
} from '@scopesync/client';
import { SqliteDocStore, SqliteKeyValueStore } from '@scopesync/store-sqlite';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { WebSocket } from 'ws';
import type { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import type { Ledger } from './ledger.ts';
import { stockProvider } from './stock-provider.ts';

// The simulated clients of a chaos run: our client on each kind of local store, and the stock
// y-websocket client. Each appends unique tokens to the `items` array of its documents and
// tells the ledger which ones the relay acknowledged; each can go offline, come back, and
// restart (our client: from its durable store, or from nothing when its store was memory).

/** The kinds of simulated client, mixed in every run. */
export const CLIENT_KINDS = ['ours-memory', 'ours-idb', 'ours-sqlite', 'stock'] as const;
/** One kind of simulated client. */
export type ClientKind = (typeof CLIENT_KINDS)[number];

/** The array every simulated edit appends to. */
export const ITEMS = 'items';

/** The items of a document, in document order. */
export function itemsOf(doc: Y.Doc): string[] {
  return doc.getArray<string>(ITEMS).toArray();
}

/** What every simulated client can do. */
export interface SimClient {
  readonly id: string;
  readonly kind: ClientKind;
  /** The documents it edits, by name. */
  readonly docs: readonly string[];
  /** Appends one token to `doc`; resolves once it is in the client's local state. */
  write(doc: string): Promise<void>;
  /** Goes offline (the socket closes; edits keep working locally). */
  offline(): void;
  online(): void;
  readonly isOnline: boolean;
  /** Closes and reopens the client: from its durable store, or empty for a memory store. */
  restart(): Promise<void>;
  /** The client's items of `doc` now. */
  items(doc: string): string[];
  /** Local edits the relay has not acknowledged (our client); 0 for the stock client (it has no acks). */
  pending(): number;
  /** The connection's state, for a report (`online`, `connecting`, `auth-failed`, …). */
  status(): string;
  close(): Promise<void>;
}

/** Where and as whom a client connects. */
export interface SimClientInit {
  readonly id: string;
  readonly kind: ClientKind;
  /** The group's proxy URL. */
  readonly url: string;
  /** An API key (stock clients); our clients register themselves when absent. */
  readonly apiKey?: string;
  /** Shared documents to open. */
  readonly shared: readonly string[];
  /** Whether our client also keeps a USER_PRIVATE (end-to-end encrypted) document of its own. */
  readonly privateDoc: boolean;
  readonly ledger: Ledger;
  /** The WebSocket class to use (a recording one for the permission checker). */
  readonly WebSocketClass?: typeof WebSocket;
}

/** How long a restarting client keeps trying to reopen while its relay is unreachable. */
const REOPEN_BOUND_MS = 60_000;

/** Opens a simulated client of `init.kind`. */
export async function openSimClient(init: SimClientInit): Promise<SimClient> {
  return init.kind === 'stock' ? openStock(init) : openOurs(init);
}

async function openOurs(init: SimClientInit): Promise<SimClient> {
  let dir: string | null = null;
  let idb: IDBFactory | null = null;
  const makeStore = (): ClientStore => {
    if (init.kind === 'ours-sqlite') {
      dir ??= mkdtempSync(join(tmpdir(), 'scopesync-chaos-client-'));
      const path = join(dir, 'client.sqlite');
      return { docs: new SqliteDocStore({ path }), kv: new SqliteKeyValueStore({ path }) };
    }
    if (init.kind === 'ours-idb') {
      idb ??= new IDBFactory();
      return indexedDbClientStore({ indexedDB: idb, IDBKeyRange });
    }
    return memoryClientStore();
  };
  let client: SyncClient | undefined;
  let handles = new Map<string, DocHandle>();
  let online = true;
  let counter = 0;
  // An ack covers the outbox of one incarnation only: a memory store that restarted lost the
  // unacknowledged edits of the one before (they were never acked, so that is allowed).
  let incarnation = 0;
  let apiKey = init.apiKey;
  let recoveryPhrase: string | undefined;
  let docs: string[] = [...init.shared];

  const open = async (): Promise<SyncClient> => {
    incarnation += 1;
    const opened = await createClient({
      url: init.url,
      ...(apiKey === undefined ? { deviceName: init.id } : { apiKey }),
      ...(recoveryPhrase === undefined ? {} : { recoveryPhrase }),
      WebSocket: init.WebSocketClass ?? WebSocket,
      store: makeStore(),
      backoff: { initialMs: 50, maxMs: 1000 },
      requestTimeoutMs: 10_000,
      connect: online,
      // The key a new device registers, kept for its restarts: read from the answer of
      // POST /keys, where a device gets it (at its first start, or in the background after a
      // first start offline). Watching `x-api-key` missed a device that sent no keyed request.
      fetch: async (input, requestInit) => {
        const response = await fetch(input, requestInit);
        if (requestInit?.method === 'POST' && new URL(String(input)).pathname === '/keys' && response.ok) {
          const answer = (await response
            .clone()
            .json()
            .catch(() => null)) as { key?: unknown } | null;
          if (typeof answer?.key === 'string') apiKey ??= answer.key;
        }
        return response;
      },
    });
    handles = new Map(docs.map((name) => [name, opened.doc(name)]));
    await Promise.all([...handles.values()].map((h) => h.whenLoaded));
    client = opened;
    return opened;
  };
  const first = await open();
  let live: SyncClient | undefined = first;
  if (init.privateDoc) {
    // A USER_PRIVATE document of its own user: its edits travel as envelopes the relay cannot read.
    const name = `USER_PRIVATE/${first.userId}/notes`;
    docs = [...docs, name];
    handles.set(name, first.doc(name));
    recoveryPhrase = await first.encryption.exportRecoveryPhrase();
  }
  const current = (): SyncClient => client ?? first;
  /**
   * Reopens after a restart. A relay that is down (killed, or the proxy refuses) fails the open
   * with Unavailable: retried with backoff, as an app would, for up to `REOPEN_BOUND_MS`. Any
   * other failure is a finding: it is thrown (and the client stays closed, visibly divergent).
   */
  const reopen = async (): Promise<void> => {
    const until = Date.now() + REOPEN_BOUND_MS;
    for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
      try {
        live = await open();
        // `online` may have changed while it opened.
        if (online) live.connect();
        else live.disconnect();
        return;
      } catch (error) {
        const unavailable = (error as { kind?: unknown }).kind === 'Unavailable';
        if (!unavailable || Date.now() + delay > until) throw error;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  };

  const handle = (doc: string): DocHandle => {
    const h = handles.get(doc);
    if (h === undefined) throw new Error(`${init.id} does not hold ${doc}`);
    return h;
  };
  return {
    id: init.id,
    kind: init.kind,
    get docs() {
      return docs;
    },
    get isOnline() {
      return online;
    },
    write: async (doc) => {
      const token = `${init.id}.${++counter}`;
      const h = handle(doc);
      init.ledger.written(token, doc, `${init.id}/${incarnation}`);
      try {
        await h.transact((d) => d.getArray<string>(ITEMS).push([token]));
      } catch (error) {
        // Refused or not stored (e.g. a private doc of a restarted memory client whose user the
        // relay has not confirmed yet): the edit was never in the outbox, so no later ack covers it.
        init.ledger.failed(token);
        throw error;
      }
      // The outbox is empty once this resolves: this token (and every earlier one) is acked.
      h.whenAcked().then(
        () => init.ledger.acked(token),
        () => undefined, // closed or restarted first: not an ack
      );
    },
    // While a restart reopens, there is no client to tell: the reopened one follows `online`.
    offline: () => {
      online = false;
      live?.disconnect();
    },
    online: () => {
      online = true;
      live?.connect();
    },
    restart: async () => {
      const before = current();
      // A memory store keeps nothing but what the harness holds: the API key (once the device
      // is registered) and the recovery phrase. A device that has not registered yet (its first
      // start was offline, it registers in the background) exists nowhere but in that memory:
      // reopened from its phrase, the relay rightly knows no user of those keys (NotFound).
      // Wait for the registration; a device still unregistered is not restarted.
      if (init.kind === 'ours-memory' && !before.registered) {
        const until = Date.now() + REOPEN_BOUND_MS;
        while (!before.registered && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
        if (!before.registered) return;
      }
      live = undefined;
      await before.close();
      await reopen();
    },
    items: (doc) => itemsOf(handle(doc).doc),
    pending: () => [...handles.values()].reduce((n, h) => n + h.pending, 0),
    status: () =>
      `${current().status}; ${[...handles.values()].map((h) => `${h.access ?? '?'}${h.closed ? ' closed' : ''} ${h.pending} pending`).join(', ')}`,
    close: async () => {
      await current().close();
      if (dir !== null) rmSync(dir, { recursive: true, force: true });
    },
    ...{ recovery: () => ({ apiKey, recoveryPhrase, userId: first.userId }) },
  } as SimClient;
}

/** The user a client of ours acts as, to read its private document with another device. */
export function recoveryOf(client: SimClient): { apiKey?: string; recoveryPhrase?: string; userId?: string } {
  const f = (client as unknown as { recovery?: () => ReturnType<typeof recoveryOf> }).recovery;
  return f ? f() : {};
}

async function openStock(init: SimClientInit): Promise<SimClient> {
  if (init.apiKey === undefined) throw new Error('a stock client needs an API key');
  let counter = 0;
  let online = true;
  let pairs = new Map<string, { doc: Y.Doc; provider: WebsocketProvider }>();
  const open = (): void => {
    pairs = new Map(
      init.shared.map((name) => {
        const doc = new Y.Doc();
        const provider = stockProvider(init.url, name, doc, {
          key: init.apiKey as string,
          WebSocketClass: init.WebSocketClass,
          connect: online,
        });
        return [name, { doc, provider }];
      }),
    );
  };
  open();
  const pair = (doc: string) => {
    const p = pairs.get(doc);
    if (p === undefined) throw new Error(`${init.id} does not hold ${doc}`);
    return p;
  };
  const destroy = (): void => {
    for (const { doc, provider } of pairs.values()) {
      provider.destroy();
      doc.destroy();
    }
  };
  return {
    id: init.id,
    kind: init.kind,
    docs: init.shared,
    get isOnline() {
      return online;
    },
    write: async (doc) => {
      const token = `${init.id}.${++counter}`;
      init.ledger.written(token, doc, init.id);
      pair(doc).doc.getArray<string>(ITEMS).push([token]);
    },
    offline: () => {
      online = false;
      for (const { provider } of pairs.values()) provider.disconnect();
    },
    online: () => {
      online = true;
      for (const { provider } of pairs.values()) provider.connect();
    },
    // The stock client keeps nothing across a restart: a fresh doc, synced from the relay.
    restart: async () => {
      destroy();
      open();
    },
    items: (doc) => itemsOf(pair(doc).doc),
    pending: () => 0,
    status: () =>
      [...pairs.values()]
        .map(({ provider }) => (provider.wsconnected ? 'connected' : 'disconnected'))
        .join(', '),
    close: async () => destroy(),
  };
}
