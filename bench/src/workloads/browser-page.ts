/**
 * The page of the browser workload, bundled for Chromium: our client (IndexedDbDocStore, the
 * browser's WebSocket) or y-indexeddb + y-websocket's WebsocketProvider, filling N documents
 * and, after a reload, opening them again. Driven through `window.bench`.
 */
import { createClient } from '@scopesync/client';
import { IndexeddbPersistence } from 'y-indexeddb';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';

/** What one cold start measured, in ms from the start of the call. */
export interface BrowserColdStart {
  /** Until the client could be used (ours: createClient resolved; peer: 0, it has no such step). */
  readonly clientMs: number;
  /** Until every document's handle was created (ours; peer: 0). */
  readonly handlesMs: number;
  readonly firstReadMs: number;
  readonly allLoadedMs: number;
  /** Null when not every document synced within `syncBoundMs`. */
  readonly allSyncedMs: number | null;
  /** Documents synced with the server within `syncBoundMs`. */
  readonly synced: number;
  /** Documents whose text after loading equals what was written. */
  readonly correct: number;
}

/** `window.bench`. */
export interface BrowserBenchApi {
  /** Writes `docs` documents through the client and waits until the relay acknowledged them all. */
  fillOurs(relayUrl: string, docs: number): Promise<void>;
  /** After a reload: opens every document and times first read, all loaded and all synced. */
  openOurs(relayUrl: string, docs: number, syncBoundMs: number): Promise<BrowserColdStart>;
  fillPeer(wsUrl: string, docs: number, round: number): Promise<void>;
  openPeer(wsUrl: string, docs: number, syncBoundMs: number, round: number): Promise<BrowserColdStart>;
}

const textOf = (i: number): string => `browser doc ${i}`;
const ourName = (userId: string, i: number): string => `USER_PUBLIC/${userId}/bench-browser-${i}`;
/** `round` keeps each round's documents apart on the one server the rounds share. */
const peerName = (round: number, i: number): string => `bench-browser-${round}-${i}`;

/** Milliseconds since `start`, taken when `promise` resolves. */
function timed(start: number, promise: Promise<unknown>): Promise<number> {
  return promise.then(() => performance.now() - start);
}

/** Waits for every one of `promises` up to `boundMs`: ms until all (or null), and how many resolved. */
async function allWithin(
  start: number,
  promises: readonly Promise<unknown>[],
  boundMs: number,
): Promise<[number | null, number]> {
  let done = 0;
  const all = Promise.all(promises.map((p) => p.then(() => void done++))).then(
    () => performance.now() - start,
  );
  const bound = new Promise<null>((resolve) => setTimeout(() => resolve(null), boundMs));
  const ms = await Promise.race([all, bound]);
  return [ms, done];
}

/** Resolves when `provider` has synced with the server. */
function providerSynced(provider: WebsocketProvider): Promise<void> {
  if (provider.synced) return Promise.resolve();
  return new Promise((resolve) => {
    const on = (synced: boolean): void => {
      if (!synced) return;
      provider.off('sync', on);
      resolve();
    };
    provider.on('sync', on);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Peer documents filled at a time (each holds a WebSocket while it is written). */
const PEER_FILL_BATCH = 100;

const bench: BrowserBenchApi = {
  async fillOurs(relayUrl, docs) {
    const client = await createClient({ url: relayUrl, deviceName: 'bench-browser' });
    const userId = client.userId as string;
    const handles = Array.from({ length: docs }, (_, i) => client.doc(ourName(userId, i)));
    await Promise.all(
      handles.map(async (handle, i) => {
        await handle.whenLoaded;
        await handle.transact((y) => y.getText('t').insert(0, textOf(i)));
      }),
    );
    await Promise.all(handles.map((handle) => handle.whenAcked()));
    await client.close();
  },

  async openOurs(relayUrl, docs, syncBoundMs) {
    const start = performance.now();
    const client = await createClient({ url: relayUrl, deviceName: 'bench-browser' });
    const clientMs = performance.now() - start;
    const userId = client.userId as string;
    const handles = Array.from({ length: docs }, (_, i) => client.doc(ourName(userId, i)));
    const handlesMs = performance.now() - start;
    const [firstReadMs, allLoadedMs, [allSyncedMs, synced]] = await Promise.all([
      timed(start, handles[0]!.whenLoaded),
      timed(start, Promise.all(handles.map((h) => h.whenLoaded))),
      allWithin(
        start,
        handles.map((h) => h.whenSynced),
        syncBoundMs,
      ),
    ]);
    const correct = handles.filter((h, i) => h.doc.getText('t').toString() === textOf(i)).length;
    await client.close();
    return { clientMs, handlesMs, firstReadMs, allLoadedMs, allSyncedMs, synced, correct };
  },

  async fillPeer(wsUrl, docs, round) {
    for (let from = 0; from < docs; from += PEER_FILL_BATCH) {
      const batch = Array.from({ length: Math.min(PEER_FILL_BATCH, docs - from) }, (_, k) => from + k);
      await Promise.all(
        batch.map(async (i) => {
          const doc = new Y.Doc();
          const persistence = new IndexeddbPersistence(peerName(round, i), doc);
          await persistence.whenSynced;
          const provider = new WebsocketProvider(wsUrl, peerName(round, i), doc, { disableBc: true });
          await providerSynced(provider);
          doc.getText('t').insert(0, textOf(i));
          // Neither acknowledges: give the socket and y-indexeddb's write a moment to go out.
          await sleep(300);
          provider.destroy();
          await persistence.destroy();
        }),
      );
    }
  },

  async openPeer(wsUrl, docs, syncBoundMs, round) {
    const start = performance.now();
    const opened = Array.from({ length: docs }, (_, i) => {
      const doc = new Y.Doc();
      const persistence = new IndexeddbPersistence(peerName(round, i), doc);
      const provider = new WebsocketProvider(wsUrl, peerName(round, i), doc, { disableBc: true });
      return { doc, persistence, provider };
    });
    const [firstReadMs, allLoadedMs, [allSyncedMs, synced]] = await Promise.all([
      timed(start, opened[0]!.persistence.whenSynced),
      timed(start, Promise.all(opened.map((o) => o.persistence.whenSynced))),
      allWithin(
        start,
        opened.map((o) => providerSynced(o.provider)),
        syncBoundMs,
      ),
    ]);
    const correct = opened.filter((o, i) => o.doc.getText('t').toString() === textOf(i)).length;
    for (const o of opened) {
      o.provider.destroy();
      await o.persistence.destroy();
    }
    return { clientMs: 0, handlesMs: 0, firstReadMs, allLoadedMs, allSyncedMs, synced, correct };
  },
};

(globalThis as unknown as { bench: BrowserBenchApi }).bench = bench;
