import type { DocName, DocStore, SubscribeMode } from '@scopesync/core';
import { SyncError } from '@scopesync/core';
import * as Y from 'yjs';
import type { Counter, Gauge } from '../metrics.ts';
import type { SyncLog } from '../sync/sync-log.ts';
import { compactAtBytes } from './compactor.ts';
import { changedBy, pendingChanged, pendingOf } from './doc-edits.ts';
import { applyLog, docFromLog } from './yjs-log.ts';

/** A plaintext write applied in memory whose commit has not completed. */
export interface InflightWrite {
  readonly data: Uint8Array;
}

/** Everything the relay holds about one document while it is in use. */
export interface DocEntry {
  readonly name: DocName;
  /** What the document is open as; a document is never both. */
  mode: SubscribeMode | null;
  /** The plaintext document, once loaded. */
  doc: Y.Doc | null;
  /** The in-memory doc may differ from store + in-flight writes (a failed commit or transaction): reload it. */
  stale: boolean;
  /** Bumped by every failed commit, so a no-op write that relied on the failed content is not acked. */
  epoch: number;
  loading: Promise<void> | null;
  /** Plaintext updates applied in memory whose commit has not completed, in order. */
  readonly inflight: Set<InflightWrite>;
  /** While loading: plaintext updates committed meanwhile, which the loaded log may lack. */
  catchup: Uint8Array[] | null;
  /** The highest committed seq the relay knows of. */
  headSeq: number;
  /** Changes with every load (see `replicaOf`); 0 before the first. */
  loadId: number;
  /** The seq through which the loaded copy held every committed entry when it was loaded. */
  loadedThrough: number;
  headKnown: boolean;
  /** Entries in the stored log (approximate), to decide when to compact. */
  logEntries: number;
  /**
   * Bytes of the plaintext document: its encoded state when loaded, plus every update applied
   * since (an upper bound, exact again at the next load). What the per-document size cap checks.
   */
  stateBytes: number;
  /** The size bound of this document (it depends on the name only), once the hub has asked for it. */
  maxBytes: number | undefined;
  /** Compact once `logEntries` reaches this; pushed back after every attempt so failures do not spin. */
  compactAt: number;
  /** Bytes of the stored log (approximate): what a load reads and applies. */
  logBytes: number;
  /** Compact once `logBytes` reaches this (see `compactAtBytes`); pushed back like `compactAt`. */
  compactAtBytes: number;
  /** Settles when every write queued so far for this document has settled. */
  tail: Promise<void>;
  /** Live {@link DocHold}s; a held document is never evicted. */
  holds: number;
  /** Operations in progress; a busy document is never evicted. */
  busy: number;
  /** Waiting for `busy` to reach 0. */
  readonly quiet: Array<() => void>;
  compaction: Promise<void> | null;
  removed: boolean;
  idleTimer: NodeJS.Timeout | null;
  /** True while the hub itself changes `doc`; any other change marks the entry stale. */
  writing: boolean;
}

/** Keeps a document loaded (plaintext) or open (encrypted) until released; `release()` is idempotent. */
export interface DocHold {
  readonly name: DocName;
  release(): void;
}

/** Load ids are unique in the process, so a reloaded copy never passes for an older one. */
let nextLoadId = 1;

/** Options of a {@link DocRegistry}. */
export interface DocRegistryOptions {
  readonly store: DocStore;
  readonly log: SyncLog;
  /** How long a document nobody uses stays in memory, in ms. */
  readonly idleMs: number;
  /** Compaction is first considered once a loaded log has grown by this many entries. */
  readonly compactAfter: number;
  /** Reports how many documents are in memory. */
  readonly openDocs: Gauge;
  /** Counts loads from the store (a plaintext document, or an encrypted log's head). */
  readonly loaded?: Counter | undefined;
  /** Counts documents dropped from memory after their idle time. */
  readonly evicted?: Counter | undefined;
  /**
   * Called when a reload brought content the previous copy lacked, with that difference and the
   * seq the new copy is complete through: the copy's readers must be sent it (see `#load`).
   */
  readonly reloaded?: ((name: DocName, update: Uint8Array, seq: number) => void) | undefined;
  /**
   * After a reload whose old copy held content the store does not (writes shown before a commit
   * that failed): the reloaded copy's state vector, so readers can be asked for that content.
   */
  readonly forgotten?: ((name: DocName, stateVector: Uint8Array) => void) | undefined;
}

/**
 * The documents in memory: finds or creates entries, loads plaintext ones from the
 * {@link DocStore} (catching up writes committed or applied while it loads), reloads stale
 * ones, evicts idle ones, and removes documents after the operations ordered before them.
 */
export class DocRegistry {
  readonly #store: DocStore;
  readonly #log: SyncLog;
  readonly #idleMs: number;
  readonly #compactAfter: number;
  readonly #openDocs: Gauge;
  readonly #loaded: Counter | undefined;
  readonly #evicted: Counter | undefined;
  readonly #reloaded: DocRegistryOptions['reloaded'];
  readonly #forgotten: DocRegistryOptions['forgotten'];
  readonly #entries = new Map<string, DocEntry>();
  readonly #removals = new Map<string, Promise<void>>();
  #closed = false;

  constructor(options: DocRegistryOptions) {
    this.#store = options.store;
    this.#log = options.log;
    this.#idleMs = options.idleMs;
    this.#compactAfter = options.compactAfter;
    this.#openDocs = options.openDocs;
    this.#loaded = options.loaded;
    this.#evicted = options.evicted;
    this.#reloaded = options.reloaded;
    this.#forgotten = options.forgotten;
  }

  /** Documents currently in memory. */
  get size(): number {
    return this.#entries.size;
  }

  /** The document's entry if it is in memory; not marked busy. */
  peek(name: DocName): DocEntry | undefined {
    return this.#entries.get(name);
  }

  /** See `DocHub.replicaOf`. */
  replicaOf(name: DocName): { loadId: number; head: number; encrypted: boolean } | null {
    const entry = this.#entries.get(name);
    if (!entry || entry.removed || entry.loading || entry.loadId === 0) return null;
    if (entry.mode === 'plaintext' && (entry.doc === null || entry.stale)) return null;
    return { loadId: entry.loadId, head: entry.loadedThrough, encrypted: entry.mode === 'encrypted' };
  }

  /** Names of the documents someone holds (subscribed sockets). */
  *heldNames(): Iterable<DocName> {
    for (const entry of this.#entries.values()) if (entry.holds > 0 && !entry.removed) yield entry.name;
  }

  /** See `DocHub.applyReplicated`. Entries that are not Yjs updates are skipped, as on load. */
  applyReplicated(
    name: DocName,
    loadId: number,
    updates: readonly Uint8Array[],
  ): 'changed' | 'unchanged' | 'gone' {
    const entry = this.#entries.get(name);
    const doc = entry?.doc;
    if (!entry || !doc || entry.stale || entry.removed || entry.loadId !== loadId) return 'gone';
    let changed = false;
    const seen = (tr: Y.Transaction): void => {
      changed ||= changedBy(tr);
    };
    // An update whose dependencies are missing only goes pending: nothing integrates, yet it is
    // new here and must reach this copy's readers now. Once its dependency arrives, Yjs
    // integrates both, but the feed forwards only the dependency's bytes (chaos finding 16).
    const pendingBefore = pendingOf(doc);
    entry.writing = true;
    doc.on('afterTransactionCleanup', seen);
    try {
      doc.transact(() =>
        applyLog(
          doc,
          updates.map((data, i) => ({ seq: i, data })),
        ),
      );
    } finally {
      doc.off('afterTransactionCleanup', seen);
      entry.writing = false;
    }
    return changed || pendingChanged(doc, pendingBefore) ? 'changed' : 'unchanged';
  }

  /**
   * Marks the document's copy stale and, when someone holds it, loads it again from the store
   * now (a held copy is otherwise reloaded only by the next operation on it).
   */
  async reload(name: DocName): Promise<void> {
    const entry = this.#entries.get(name);
    if (!entry || entry.removed || entry.mode !== 'plaintext') return;
    entry.stale = true;
    if (entry.holds === 0) return;
    const ready = await this.acquire(name, 'plaintext');
    this.release(ready);
  }

  /** Finds or creates the entry, marks it busy, and makes it ready for `mode`. Pair with {@link release}. */
  async acquire(name: DocName, mode: SubscribeMode): Promise<DocEntry> {
    for (;;) {
      let entry = this.#entries.get(name);
      if (entry?.removed || this.#removals.has(name)) {
        // Operations that arrive during a removal act on the document that follows it.
        await this.#removals.get(name)?.catch(() => undefined);
        continue;
      }
      if (!entry) {
        entry = newEntry(name);
        this.#entries.set(name, entry);
        this.#openDocs.set(this.#entries.size);
      }
      entry.busy += 1;
      if (entry.idleTimer) {
        clearTimeout(entry.idleTimer);
        entry.idleTimer = null;
      }
      try {
        await this.#ready(entry, mode);
      } catch (error) {
        this.release(entry);
        throw error;
      }
      // A busy entry is neither evicted nor removed (removal waits for it), so it is still current.
      return entry;
    }
  }

  /** Ends an operation begun with {@link acquire}. */
  release(entry: DocEntry): void {
    entry.busy -= 1;
    if (entry.busy === 0) {
      for (const wake of entry.quiet.splice(0)) wake();
    }
    this.maybeIdle(entry);
  }

  /**
   * The entry when someone holds it and it is ready for `mode` now (loaded and current, not
   * loading, not being removed), else null. Such an entry cannot be evicted, reloaded or
   * removed without one of those flags set first, so a synchronous use of it needs no turn
   * through {@link acquire}: the hot path of every socket that joins a document others hold.
   */
  held(name: DocName, mode: SubscribeMode): DocEntry | null {
    const entry = this.#entries.get(name);
    if (entry === undefined || entry.holds === 0 || entry.removed || entry.loading !== null) return null;
    if (entry.mode !== mode || !entry.headKnown || this.#removals.has(name)) return null;
    if (mode === 'plaintext' && (entry.doc === null || entry.stale)) return null;
    return entry;
  }

  /** Keeps the document ready for `mode` until the hold is released. */
  async hold(name: DocName, mode: SubscribeMode): Promise<DocHold> {
    const entry = await this.acquire(name, mode);
    try {
      return this.holdEntry(entry);
    } finally {
      this.release(entry);
    }
  }

  /** One more hold on an entry that is acquired or already {@link held}. */
  holdEntry(entry: DocEntry): DocHold {
    entry.holds += 1;
    return new EntryHold(this, entry);
  }

  /**
   * Removes the document from the store and from memory, after the operations, writes and
   * compaction already admitted for it. Operations that arrive meanwhile wait and then act on
   * a new document. On failure the document stays as it was.
   */
  async remove(name: DocName): Promise<void> {
    const previous = this.#removals.get(name);
    if (previous) await previous.catch(() => undefined);
    const removal = this.#remove(name);
    this.#removals.set(name, removal);
    try {
      await removal;
    } finally {
      if (this.#removals.get(name) === removal) this.#removals.delete(name);
    }
  }

  /** Arms the idle timer of an entry nobody uses. */
  maybeIdle(entry: DocEntry): void {
    if (this.#closed || entry.removed || entry.busy > 0 || entry.holds > 0 || entry.idleTimer) return;
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = null;
      if (entry.busy > 0 || entry.holds > 0 || entry.removed) return;
      if (entry.inflight.size > 0 || entry.compaction || entry.loading) {
        this.maybeIdle(entry); // try again later
        return;
      }
      this.#evicted?.inc();
      this.#drop(entry);
    }, this.#idleMs);
    entry.idleTimer.unref();
  }

  /** Drops every document from memory and stops evicting. The caller has settled every write first. */
  close(): void {
    this.#closed = true;
    for (const entry of [...this.#entries.values()]) this.#drop(entry);
  }

  async #remove(name: DocName): Promise<void> {
    const entry = this.#entries.get(name);
    try {
      if (entry) {
        entry.removed = true;
        // Operations admitted before the removal go first: they are ordered before it.
        while (entry.busy > 0) await new Promise<void>((resolve) => entry.quiet.push(resolve));
        await entry.tail;
        await entry.compaction;
      }
      await this.#store.remove(name);
    } catch (error) {
      if (entry) {
        // Nothing was removed: the document stays usable as it was.
        entry.removed = false;
        this.maybeIdle(entry);
      }
      throw error;
    }
    if (entry) this.#drop(entry);
  }

  async #ready(entry: DocEntry, mode: SubscribeMode): Promise<void> {
    for (;;) {
      if (entry.loading) {
        await entry.loading;
        continue;
      }
      if (entry.mode !== null && entry.mode !== mode) {
        throw new SyncError(
          'Conflict',
          mode === 'plaintext'
            ? 'the document is open on the encrypted channel'
            : 'the document holds plaintext Yjs data, not an encrypted log',
        );
      }
      if (mode === 'plaintext' && (entry.doc === null || entry.stale)) {
        entry.loading = this.#load(entry).finally(() => {
          entry.loading = null;
        });
        continue;
      }
      if (!entry.headKnown) {
        entry.loading = this.#store
          .head(entry.name)
          .then((head) => {
            entry.headSeq = Math.max(entry.headSeq, head);
            entry.headKnown = true;
            entry.loadedThrough = head;
            entry.loadId = nextLoadId++;
            this.#loaded?.inc();
          })
          .finally(() => {
            entry.loading = null;
          });
        continue;
      }
      entry.mode = mode;
      return;
    }
  }

  async #load(entry: DocEntry): Promise<void> {
    entry.catchup = [];
    try {
      const head = await this.#store.head(entry.name);
      const stored = await this.#store.load(entry.name);
      const { doc, skipped } = docFromLog(
        stored,
        (loaded) => {
          // Writes committed while we loaded, and writes applied but not yet committed.
          for (const data of entry.catchup ?? []) Y.applyUpdate(loaded, data);
          for (const w of entry.inflight) Y.applyUpdate(loaded, w.data);
        },
        entry.name,
      );
      if (skipped > 0 && skipped === stored.length) {
        doc.destroy();
        throw new SyncError('Conflict', 'the stored document is an encrypted log, not a Yjs document');
      }
      if (skipped > 0) {
        this.#log('warn', 'skipped stored entries that are not Yjs updates', { doc: entry.name, skipped });
      }
      doc.on('afterTransactionCleanup', (tr) => {
        if (!entry.writing && entry.doc === doc && changedBy(tr)) {
          // Someone changed a hub document outside transact/applyUpdate: that change is not
          // stored, so the document no longer matches its log. Reload it on next use.
          entry.stale = true;
          this.#log('warn', 'a hub document was changed outside DocHub.transact; reloading it', {
            doc: entry.name,
          });
        }
      });
      // While the copy was stale, other relays' writes could not be applied to it (the feed drops
      // them) but the reload read them from the store: readers of the old copy never got them,
      // and a stock y-websocket client never asks again (chaos issue #16). Send the difference.
      const previous = entry.doc;
      const gained = previous ? newContent(previous, doc) : null;
      // And the other way round: what readers were shown but the store never took. Its writer
      // resends it — unless that writer is gone — so the readers who hold it are asked too.
      const forgot = previous ? newContent(doc, previous) !== null : false;
      previous?.destroy();
      entry.doc = doc;
      entry.stale = false;
      entry.mode = 'plaintext';
      entry.headSeq = Math.max(entry.headSeq, head, stored.at(-1)?.seq ?? 0);
      entry.headKnown = true;
      entry.loadedThrough = Math.max(head, stored.at(-1)?.seq ?? 0);
      entry.loadId = nextLoadId++;
      entry.logEntries = stored.length;
      entry.logBytes = 0;
      for (const e of stored) entry.logBytes += e.data.byteLength;
      entry.compactAtBytes = compactAtBytes(entry.logBytes);
      entry.stateBytes = Y.encodeStateAsUpdate(doc).byteLength;
      entry.compactAt = stored.length + this.#compactAfter;
      this.#loaded?.inc();
      if (gained) this.#reloaded?.(entry.name, gained, entry.loadedThrough);
      if (forgot) this.#forgotten?.(entry.name, Y.encodeStateVector(doc));
    } finally {
      entry.catchup = null;
    }
  }

  #drop(entry: DocEntry): void {
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = null;
    entry.doc?.destroy();
    entry.doc = null;
    if (this.#entries.get(entry.name) === entry) {
      this.#entries.delete(entry.name);
      this.#openDocs.set(this.#entries.size);
    }
  }
}

/**
 * A hold on one entry. Every subscribed socket keeps one for as long as it is open: an object
 * with a method, not a closure and its context per hold.
 */
class EntryHold implements DocHold {
  readonly name: DocName;
  readonly #registry: DocRegistry;
  /** Null once released. */
  #entry: DocEntry | null;

  constructor(registry: DocRegistry, entry: DocEntry) {
    this.name = entry.name;
    this.#registry = registry;
    this.#entry = entry;
  }

  release(): void {
    const entry = this.#entry;
    if (entry === null) return;
    this.#entry = null;
    entry.holds -= 1;
    this.#registry.maybeIdle(entry);
  }
}

/** What `next` holds that `previous` lacks, as one update; null when nothing. */
function newContent(previous: Y.Doc, next: Y.Doc): Uint8Array | null {
  const diff = Y.encodeStateAsUpdate(next, Y.encodeStateVector(previous));
  try {
    return Y.snapshotContainsUpdate(Y.snapshot(previous), diff) ? null : diff;
  } catch {
    return diff;
  }
}

function newEntry(name: DocName): DocEntry {
  return {
    name,
    mode: null,
    doc: null,
    stale: false,
    epoch: 0,
    loading: null,
    inflight: new Set(),
    catchup: null,
    headSeq: 0,
    loadId: 0,
    loadedThrough: 0,
    headKnown: false,
    logEntries: 0,
    stateBytes: 0,
    maxBytes: undefined,
    compactAt: Number.POSITIVE_INFINITY,
    logBytes: 0,
    compactAtBytes: Number.POSITIVE_INFINITY,
    tail: Promise.resolve(),
    holds: 0,
    busy: 0,
    quiet: [],
    compaction: null,
    removed: false,
    idleTimer: null,
    writing: false,
  };
}
