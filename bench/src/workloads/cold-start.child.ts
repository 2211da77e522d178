/**
 * Child process for the cold-start workload, in two phases, each its own fresh process.
 * `fill`: writes the documents through one store, closes it and saves the process's IndexedDB
 * (every database, through the plain API) to a file. `read`: restores that file into an empty
 * fake-indexeddb, then opens the store and times the reads — nothing of the read path (Dexie,
 * the store, Yjs's apply) has run in that process before the clock starts, as in a page load.
 * Argv: kind, docs, updatesPerDoc, phase, file. Sends one Outcome to the parent and exits.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { deserialize, serialize } from 'node:v8';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { IndexeddbPersistence } from 'y-indexeddb';
import * as Y from 'yjs';
import { settleHeap } from '../driver/heap.ts';
import { type DatabaseDump, dumpDatabases, restoreDatabases } from '../driver/idb-snapshot.ts';
import { pool } from '../driver/time.ts';

export type StoreKind = 'scopesync' | 'scopesync-client' | 'y-indexeddb';

/** Cold-start figures of one store. */
export interface ColdStartResult {
  readonly firstReadMs: number;
  readonly allLoadedMs: number;
  /** Documents whose loaded text equals what was written. */
  readonly correct: number;
}

/** A way to fill a store and read it back after a restart. */
interface ColdStore {
  /** Writes every document's updates, then closes the store. */
  fill(corpus: readonly CorpusDoc[]): Promise<void>;
  /** Opens the store again (what a page load does) and reads one document into a Y.Doc. */
  open(): Promise<void>;
  read(name: string): Promise<Y.Doc>;
  close(): Promise<void>;
}

interface CorpusDoc {
  readonly name: string;
  readonly updates: Uint8Array[];
  readonly text: string;
}

const CONCURRENCY = 32;

/**
 * A Y.Doc named after its document, for both stores alike. A doc without a guid draws a
 * random UUID through crypto.getRandomValues once per character, which in Node on a busy
 * machine costs about as much as reading the doc from either store (a browser's is cheap):
 * the figures would measure that, not the stores.
 */
function namedDoc(name: string): Y.Doc {
  return new Y.Doc({ guid: name });
}

function corpus(docs: number, updatesPerDoc: number): CorpusDoc[] {
  return Array.from({ length: docs }, (_, d) => {
    const doc = new Y.Doc();
    const updates: Uint8Array[] = [];
    doc.on('update', (u: Uint8Array) => updates.push(u));
    const text = doc.getText('text');
    for (let u = 0; u < updatesPerDoc; u++) text.insert((u * 7) % (text.length + 1), `w${d}-${u} `);
    return { name: `PUBLIC_RW/_/cold-${d}`, updates, text: text.toString() };
  });
}

function yIndexeddbStore(): ColdStore {
  let open: IndexeddbPersistence[] = [];
  return {
    async fill(all) {
      await pool(all.length, CONCURRENCY, 120_000, async (i) => {
        const { name, updates } = all[i]!;
        const doc = new Y.Doc();
        const persistence = new IndexeddbPersistence(name, doc);
        await persistence.whenSynced;
        for (const update of updates) Y.applyUpdate(doc, update);
        // destroy() waits for the queued writes before closing the database.
        await persistence.destroy();
      });
    },
    async open() {},
    async read(name) {
      const doc = namedDoc(name);
      const persistence = new IndexeddbPersistence(name, doc);
      open.push(persistence);
      await persistence.whenSynced;
      return doc;
    },
    async close() {
      await Promise.all(open.map((p) => p.destroy()));
      open = [];
    },
  };
}

async function ourStore(): Promise<ColdStore> {
  const { IndexedDbDocStore } = await import('@scopesync/client');
  const options = { name: 'bench-cold-start', indexedDB: globalThis.indexedDB, IDBKeyRange };
  let store: InstanceType<typeof IndexedDbDocStore> | null = null;
  return {
    async fill(all) {
      const filling = new IndexedDbDocStore(options);
      // One entry per update, as the client's local log keeps them before compaction.
      await pool(all.length, CONCURRENCY, 120_000, (i) =>
        filling.appendBatch(all[i]!.updates.map((data) => ({ doc: all[i]!.name, data }))),
      );
      await filling.close();
    },
    async open() {
      store = new IndexedDbDocStore(options);
    },
    async read(name) {
      const entries = await store!.load(name);
      const doc = namedDoc(name);
      doc.transact(() => {
        for (const entry of entries) Y.applyUpdate(doc, entry.data);
      });
      return doc;
    },
    async close() {
      await store?.close();
    },
  };
}

/**
 * The client's own path: its LocalDocLog on the IndexedDB client store (document record and
 * entries). The edits are made as a client makes them (local entries, then acknowledged by
 * the relay), and the page has been opened once since, as DocHandle does it: load, then merge
 * the acknowledged entries in the background. Read back the way DocHandle loads a doc.
 */
async function clientLogStore(): Promise<ColdStore> {
  const { indexedDbClientStore } = await import('../../../packages/client/src/client-store.ts');
  const { LocalDocLog, PLAINTEXT_CODEC } = await import('../../../packages/client/src/local-doc-log.ts');
  const options = { name: 'bench-cold-start-client', indexedDB: globalThis.indexedDB, IDBKeyRange };
  type Store = ReturnType<typeof indexedDbClientStore>;
  const logOf = (store: Store, name: string) =>
    new LocalDocLog(store.docs, store.kv, name, PLAINTEXT_CODEC, 100);
  let store: Store | null = null;
  const closeStore = async (s: Store | null): Promise<void> => {
    await Promise.all([s?.docs.close(), s?.kv.close()]);
  };
  return {
    async fill(all) {
      const session = indexedDbClientStore(options);
      await pool(all.length, CONCURRENCY, 120_000, async (i) => {
        const log = logOf(session, all[i]!.name);
        await log.load();
        const seqs: number[] = [];
        for (const update of all[i]!.updates) seqs.push((await log.appendLocal(update)).seq);
        await log.markAcked(seqs);
      });
      await closeStore(session);
      // An earlier start of the page: every doc loaded, then its acknowledged entries merged.
      const earlier = indexedDbClientStore(options);
      await pool(all.length, CONCURRENCY, 120_000, async (i) => {
        const log = logOf(earlier, all[i]!.name);
        await log.load();
        await log.compactSettled();
      });
      await closeStore(earlier);
    },
    async open() {
      store = indexedDbClientStore(options);
    },
    async read(name) {
      const updates = await logOf(store!, name).load();
      const doc = namedDoc(name);
      doc.transact(() => {
        for (const update of updates) Y.applyUpdate(doc, update);
      });
      return doc;
    },
    async close() {
      await closeStore(store);
    },
  };
}

/** What the fill phase leaves for the read phase. */
interface Filled {
  readonly databases: DatabaseDump[];
  /** Each document's name and the text it must read back as. */
  readonly docs: Array<{ readonly name: string; readonly text: string }>;
}

function storeOf(kind: StoreKind): Promise<ColdStore> | ColdStore {
  return kind === 'scopesync'
    ? ourStore()
    : kind === 'scopesync-client'
      ? clientLogStore()
      : yIndexeddbStore();
}

/** Each process has its own in-memory IndexedDB; every store sees the same globals. */
function freshIndexedDb(): IDBFactory {
  const indexedDB = new IDBFactory();
  Object.assign(globalThis, { indexedDB, IDBKeyRange });
  return indexedDB;
}

async function fill(kind: StoreKind, docs: number, updatesPerDoc: number, file: string): Promise<null> {
  const all = corpus(docs, updatesPerDoc);
  const indexedDB = freshIndexedDb();
  await (await storeOf(kind)).fill(all);
  const filled: Filled = {
    databases: await dumpDatabases(indexedDB),
    docs: all.map(({ name, text }) => ({ name, text })),
  };
  await writeFile(file, serialize(filled));
  return null;
}

async function measure(kind: StoreKind, file: string): Promise<ColdStartResult> {
  const { databases, docs: all } = deserialize(await readFile(file)) as Filled;
  await restoreDatabases(freshIndexedDb(), databases);
  // The store's modules are imported and none of its read path has run: a page's scripts, loaded.
  const store = await storeOf(kind);
  // The restore's garbage collected and swept before the clock starts (see settleHeap).
  settleHeap();
  const start = performance.now();
  await store.open();
  const first = await store.read(all[0]!.name);
  const firstReadMs = performance.now() - start;
  let correct = first.getText('text').toString() === all[0]!.text ? 1 : 0;
  await pool(all.length - 1, CONCURRENCY, 120_000, async (i) => {
    const { name, text } = all[i + 1]!;
    const doc = await store.read(name);
    if (doc.getText('text').toString() === text) correct++;
  });
  const allLoadedMs = performance.now() - start;
  await store.close();
  return { firstReadMs, allLoadedMs, correct };
}

const [kind, docs, updatesPerDoc, phase, file] = process.argv.slice(2);
const run =
  phase === 'fill'
    ? fill(kind as StoreKind, Number(docs), Number(updatesPerDoc), file!)
    : measure(kind as StoreKind, file!);
run.then(
  (value) => process.send?.({ ok: true, value }, () => process.exit(0)),
  (error: unknown) =>
    process.send?.({ ok: false, error: error instanceof Error ? error.message : String(error) }, () =>
      process.exit(0),
    ),
);
