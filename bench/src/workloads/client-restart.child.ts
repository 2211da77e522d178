/**
 * Child process for the client restart of workload 5: a client store holds the
 * automerge-paper document as a compacted state plus a tail of recent keystrokes; the store
 * is closed, reopened and the document read into a fresh Y.Doc. Ours (the client's
 * LocalDocLog on IndexedDbDocStore, loaded the way DocHandle loads) against y-indexeddb,
 * and both against a bare Y.applyUpdate of the same bytes, in turn, in one process.
 * Argv: rounds, tail. Sends one Outcome<ClientRestartResult> to the parent and exits.
 */
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { IndexeddbPersistence } from 'y-indexeddb';
import * as Y from 'yjs';
import { indexedDbClientStore } from '../../../packages/client/src/client-store.ts';
import { LocalDocLog, PLAINTEXT_CODEC } from '../../../packages/client/src/local-doc-log.ts';
import { settleHeap } from '../driver/heap.ts';
import { median } from '../driver/stats.ts';
import { prepareSequential, tracePath } from '../driver/traces.ts';

/** Median reload times of the automerge-paper document, milliseconds. */
export interface ClientRestartResult {
  readonly oursMs: number;
  readonly yIndexeddbMs: number;
  /** Y.applyUpdate of the stored state and then of each tail update into a fresh Y.Doc. */
  readonly bareMs: number;
  readonly correct: boolean;
  readonly stateBytes: number;
  readonly tail: number;
}

const DOC = 'PUBLIC_RW/_/bench-paper-restart';

async function measure(rounds: number, tail: number): Promise<ClientRestartResult> {
  const path = tracePath('automerge-paper');
  if (path === null) throw new Error('../shared/traces/automerge-paper.json.gz not found');
  const replay = prepareSequential(path, null, tail);
  const head = replay.headState;
  const tailUpdates = replay.updates.slice(replay.headUpdates);
  Object.assign(globalThis, { indexedDB: new IDBFactory(), IDBKeyRange });
  const options = { name: 'bench-paper-restart', indexedDB: globalThis.indexedDB, IDBKeyRange };

  // Ours: the state as the relay's answer to a fresh client's first sync (one Remote entry),
  // then the tail as local edits, each its own durable entry.
  {
    const store = indexedDbClientStore(options);
    const log = new LocalDocLog(store.docs, store.kv, DOC, PLAINTEXT_CODEC, 100);
    await log.load();
    await log.appendRemote(head);
    for (const update of tailUpdates) await log.appendLocal(update);
    await Promise.all([store.docs.close(), store.kv.close()]);
  }
  // y-indexeddb: the same bytes through its provider (the state arrives as one update).
  {
    const doc = new Y.Doc();
    const persistence = new IndexeddbPersistence(DOC, doc);
    await persistence.whenSynced;
    Y.applyUpdate(doc, head);
    for (const update of tailUpdates) Y.applyUpdate(doc, update);
    await persistence.destroy();
  }

  const expected = replay.expectedText;
  let correct = true;
  const times = { ours: [] as number[], yIndexeddb: [] as number[], bare: [] as number[] };
  const reloads: Record<keyof typeof times, () => Promise<void>> = {
    bare: async () => {
      const start = performance.now();
      const bare = new Y.Doc();
      bare.transact(() => {
        Y.applyUpdate(bare, head);
        for (const update of tailUpdates) Y.applyUpdate(bare, update);
      });
      times.bare.push(performance.now() - start);
      correct &&= bare.getText('text').toString() === expected;
    },
    ours: async () => {
      const start = performance.now();
      const store = indexedDbClientStore(options);
      const log = new LocalDocLog(store.docs, store.kv, DOC, PLAINTEXT_CODEC, 100);
      const updates = await log.load();
      const ours = new Y.Doc();
      // What DocHandle does with a loaded log: the entries in order, in one transaction.
      ours.transact(() => {
        for (const update of updates) Y.applyUpdate(ours, update);
      });
      times.ours.push(performance.now() - start);
      correct &&= ours.getText('text').toString() === expected;
      await Promise.all([store.docs.close(), store.kv.close()]);
    },
    yIndexeddb: async () => {
      const start = performance.now();
      const theirs = new Y.Doc();
      const persistence = new IndexeddbPersistence(DOC, theirs);
      await persistence.whenSynced;
      times.yIndexeddb.push(performance.now() - start);
      correct &&= theirs.getText('text').toString() === expected;
      await persistence.destroy();
    },
  };
  const order = ['bare', 'ours', 'yIndexeddb'] as const;
  for (let r = 0; r < rounds; r++) {
    // Each round starts with a different one, so none always runs first after a collection.
    for (let k = 0; k < order.length; k++) {
      settleHeap();
      await reloads[order[(r + k) % order.length]!]();
    }
  }
  return {
    oursMs: median(times.ours),
    yIndexeddbMs: median(times.yIndexeddb),
    bareMs: median(times.bare),
    correct,
    stateBytes: head.byteLength,
    tail: tailUpdates.length,
  };
}

const [rounds, tail] = process.argv.slice(2);
measure(Number(rounds), Number(tail)).then(
  (value) => process.send?.({ ok: true, value }, () => process.exit(0)),
  (error: unknown) =>
    process.send?.({ ok: false, error: error instanceof Error ? error.message : String(error) }, () =>
      process.exit(0),
    ),
);
