import { setImmediate } from 'node:timers';
import {
  type Caller,
  type DocName,
  type DocStore,
  type EncEntry,
  isSyncError,
  type StoredEntry,
  type SubscribeMode,
  SyncError,
} from '@scopesync/core';
import * as Y from 'yjs';
import type { Counter, Gauge, Histogram, Metrics } from '../metrics.ts';
import { consoleSyncLog, type SyncLog } from './sync-log.ts';

/**
 * Checks an encrypted envelope (or snapshot) before the hub stores it; throws a SyncError to
 * refuse it. The relay cannot decrypt, but it can verify the author's signature.
 */
export type EnvelopeVerifier = (name: DocName, caller: Caller, envelope: Uint8Array) => Promise<void>;

/** Options of a {@link DocHub}; every optional field has a default. */
export interface DocHubOptions {
  /** Where every document's log lives. The hub never closes it. */
  readonly store: DocStore;
  readonly metrics: Metrics;
  /** How long a document nobody uses stays in memory, in ms. Default 30 s. */
  readonly idleMs?: number | undefined;
  /** Compact a plaintext document's log once it holds this many entries. Default 500. */
  readonly compactAfter?: number | undefined;
  /** Largest encrypted envelope or snapshot accepted, in bytes. Default 16 MiB. */
  readonly maxEnvelopeBytes?: number | undefined;
  /** Checks each encrypted envelope and snapshot before it is stored. Default: none. */
  readonly verifyEnvelope?: EnvelopeVerifier | undefined;
  /** Where handled failures are reported. Default: JSON lines on stderr. */
  readonly log?: SyncLog | undefined;
}

const DEFAULTS = {
  idleMs: 30_000,
  compactAfter: 500,
  maxEnvelopeBytes: 16 * 1024 * 1024,
};

/** Receives what happens to one document after it is durable. Every callback is optional. */
export interface DocListener {
  /** A committed plaintext Yjs update, in commit order, with the origin its writer gave. */
  readonly update?: ((update: Uint8Array, origin: unknown) => void) | undefined;
  /** A committed envelope of an encrypted document, in seq order. */
  readonly encrypted?: ((entry: EncEntry, origin: unknown) => void) | undefined;
  /** The document was removed; the subscription has ended. */
  readonly removed?: (() => void) | undefined;
}

/** A live subscription to one document; `close()` ends it (idempotent). */
export interface DocSubscription {
  readonly name: DocName;
  close(): void;
}

/** A write the hub has applied in memory; `committed` settles once the store committed (or refused) it. */
export interface PendingWrite {
  readonly committed: Promise<{ seq: number }>;
}

/** Who writes, for envelope verification, and the origin listeners see the write come from. */
export interface WriteContext {
  /** The writer, passed to `verifyEnvelope`. Default: the server runtime. */
  readonly caller?: Caller | undefined;
  /** Handed to listeners with the committed write, e.g. so a socket can skip its own echo. */
  readonly origin?: unknown;
}

/** One page of an encrypted document's log. */
export interface EncryptedPage {
  /** The highest seq the store has assigned in this document (0 if none); at least the last entry's seq. */
  readonly headSeq: number;
  /** Entries after the requested seq, in seq order. Fewer than exist when `maxBytes`/`maxEntries` cut the page. */
  readonly entries: EncEntry[];
}

interface QueuedWrite {
  readonly entry: Entry;
  readonly mode: SubscribeMode;
  readonly data: Uint8Array;
  readonly origin: unknown;
  readonly resolve: (value: { seq: number }) => void;
  readonly reject: (error: unknown) => void;
}

/** Everything the hub holds about one document while it is in use. */
interface Entry {
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
  readonly inflight: Set<QueuedWrite>;
  /** While loading: plaintext updates committed meanwhile, which the loaded log may lack. */
  catchup: Uint8Array[] | null;
  /** The highest committed seq this hub knows of. */
  headSeq: number;
  headKnown: boolean;
  /** Entries in the stored log (approximate), to decide when to compact. */
  logEntries: number;
  /** Compact once `logEntries` reaches this; pushed back after every attempt so failures do not spin. */
  compactAt: number;
  /** Settles when every write queued so far for this document has settled. */
  tail: Promise<void>;
  readonly listeners: Set<DocListener>;
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

const ENCRYPTABLE = (name: string): boolean => name.startsWith('USER_PRIVATE/') || name.startsWith('blob/');
const MUST_ENCRYPT = (name: string): boolean => name.startsWith('USER_PRIVATE/');
const RUNTIME: Caller = { kind: 'runtime' };

/**
 * The relay's documents in memory. Loads plaintext Y.Docs from the {@link DocStore} on first
 * use, keeps them while subscribed or busy, evicts them after `idleMs` idle, and is the only
 * path by which a document changes: every write is applied in memory at once and broadcast to
 * plaintext subscribers, committed with all the other writes of the same tick in one
 * `appendBatch`, and only then acknowledged to its writer — so no writer drops an update the
 * store may still lose. Encrypted entries go out after the commit, with their seq. It also carries the encrypted channel (opaque envelopes with relay-assigned
 * seqs) and compacts plaintext logs.
 */
export class DocHub {
  readonly #store: DocStore;
  readonly #log: SyncLog;
  readonly #idleMs: number;
  readonly #compactAfter: number;
  readonly #maxEnvelopeBytes: number;
  readonly #verifyEnvelope: EnvelopeVerifier | undefined;
  readonly #entries = new Map<string, Entry>();
  readonly #removals = new Map<string, Promise<void>>();
  readonly #compactions = new Set<Promise<void>>();
  readonly #ops = new Set<Promise<unknown>>();
  #queue: QueuedWrite[] = [];
  #scheduled = false;
  #draining: Promise<void> | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;
  readonly #openDocs: Gauge;
  readonly #commits: Counter;
  readonly #commitFailures: Counter;
  readonly #committedWrites: Counter;
  readonly #commitSeconds: Histogram;
  readonly #compactionsDone: Counter;

  constructor(options: DocHubOptions) {
    this.#store = options.store;
    this.#log = options.log ?? consoleSyncLog;
    this.#idleMs = options.idleMs ?? DEFAULTS.idleMs;
    this.#compactAfter = Math.max(2, options.compactAfter ?? DEFAULTS.compactAfter);
    this.#maxEnvelopeBytes = options.maxEnvelopeBytes ?? DEFAULTS.maxEnvelopeBytes;
    this.#verifyEnvelope = options.verifyEnvelope;
    const m = options.metrics;
    this.#openDocs = m.gauge('scopesync_sync_open_docs', 'Documents held in memory by the relay.');
    this.#commits = m.counter(
      'scopesync_store_commits_total',
      'Batches of document writes committed to the store.',
    );
    this.#commitFailures = m.counter(
      'scopesync_store_commit_failures_total',
      'Batches of document writes the store failed to commit.',
    );
    this.#committedWrites = m.counter(
      'scopesync_store_writes_total',
      'Document updates and envelopes committed.',
    );
    this.#commitSeconds = m.histogram(
      'scopesync_store_commit_seconds',
      'Time to commit one batch of writes.',
    );
    this.#compactionsDone = m.counter('scopesync_compactions_total', 'Plaintext document logs compacted.');
  }

  /** Documents currently held in memory. */
  get openDocs(): number {
    return this.#entries.size;
  }

  /**
   * Runs `fn` on the document in one Yjs transaction and stores the resulting update.
   * Resolves once the store committed it (with its seq), or with the current head when `fn`
   * changed nothing. `fn` must be synchronous; if it throws, its changes are discarded.
   */
  async transact(name: DocName, fn: (doc: Y.Doc) => void, origin?: unknown): Promise<{ seq: number }> {
    return (await this.enqueueTransact(name, fn, origin)).committed;
  }

  /**
   * Like {@link transact}, but resolves as soon as the change is applied in memory; the
   * returned `committed` settles after the commit.
   */
  enqueueTransact(name: DocName, fn: (doc: Y.Doc) => void, origin?: unknown): Promise<PendingWrite> {
    return this.#op(async () => {
      this.#refuseEncryptedName(name);
      const entry = await this.#acquire(name, 'plaintext');
      try {
        const doc = entry.doc as Y.Doc;
        let update: Uint8Array | null = null;
        const capture = (u: Uint8Array): void => {
          update = update === null ? u : Y.mergeUpdates([update, u]);
        };
        doc.on('update', capture);
        entry.writing = true;
        try {
          doc.transact((tr) => {
            const result: unknown = fn(tr.doc);
            if (result !== null && typeof result === 'object' && 'then' in result) {
              // Changes after an await would land outside this transaction, uncaptured and unstored.
              throw new SyncError('BadRequest', 'DocHub.transact needs a synchronous function');
            }
          }, origin);
        } catch (error) {
          // The transaction's changes are in memory but will not be stored: reload before the next use.
          if (update !== null) entry.stale = true;
          throw error;
        } finally {
          entry.writing = false;
          doc.off('update', capture);
        }
        if (update === null) return { committed: this.#noop(entry) };
        return { committed: this.#enqueue(entry, 'plaintext', update, origin) };
      } finally {
        this.#release(entry);
      }
    });
  }

  /**
   * Applies a Yjs update (v1) received from a client and stores it. A malformed update is
   * refused with SyncError('InvalidMessage') before it touches the store or the document.
   * Resolves once committed, or with the current head when it brought nothing new.
   */
  async applyUpdate(name: DocName, update: Uint8Array, origin?: unknown): Promise<{ seq: number }> {
    return (await this.enqueueUpdate(name, update, origin)).committed;
  }

  /**
   * Like {@link applyUpdate}, but resolves as soon as the update is applied in memory, so a
   * socket can process its next frame in order while the commit is pending.
   */
  enqueueUpdate(name: DocName, update: Uint8Array, origin?: unknown): Promise<PendingWrite> {
    return this.#op(async () => {
      this.#refuseEncryptedName(name);
      validateUpdate(update);
      const entry = await this.#acquire(name, 'plaintext');
      try {
        const doc = entry.doc as Y.Doc;
        const pendingBefore = doc.store.pendingStructs?.update ?? null;
        const pendingDsBefore = doc.store.pendingDs;
        let changed = false;
        const onUpdate = (): void => {
          changed = true;
        };
        doc.on('update', onUpdate);
        entry.writing = true;
        try {
          Y.applyUpdate(doc, update, origin);
        } catch (error) {
          // Decoding passed but integration failed half-way: the doc may hold part of it.
          entry.stale = true;
          throw new SyncError('InvalidMessage', 'the Yjs update could not be applied', { cause: error });
        } finally {
          entry.writing = false;
          doc.off('update', onUpdate);
        }
        // An update whose dependencies are missing changes only the pending set; store it all the
        // same, or it would be lost when the document is evicted or the relay restarts.
        const pendingChanged =
          (doc.store.pendingStructs?.update ?? null) !== pendingBefore ||
          doc.store.pendingDs !== pendingDsBefore;
        if (!changed && !pendingChanged) return { committed: this.#noop(entry) };
        return { committed: this.#enqueue(entry, 'plaintext', update, origin) };
      } finally {
        this.#release(entry);
      }
    });
  }

  /** Runs `fn` on the loaded document and returns its result. `fn` must not change the document. */
  read<T>(name: DocName, fn: (doc: Y.Doc) => T): Promise<T> {
    return this.#op(async () => {
      this.#refuseEncryptedName(name);
      const entry = await this.#acquire(name, 'plaintext');
      try {
        return fn(entry.doc as Y.Doc);
      } finally {
        this.#release(entry);
      }
    });
  }

  /** The store's head seq of the document: the relay's version of the object (0 if never written). */
  head(name: DocName): Promise<number> {
    return this.#op(async () => {
      this.#open();
      const entry = this.#entries.get(name);
      const stored = await this.#store.head(name);
      return entry ? Math.max(entry.headSeq, stored) : stored;
    });
  }

  /**
   * Starts delivering the document's committed writes to `listener`. Plaintext mode loads the
   * document first: anything committed after this resolves reaches the listener, anything
   * before is in the document, so a snapshot read right after leaves no gap.
   */
  subscribe(name: DocName, mode: SubscribeMode, listener: DocListener): Promise<DocSubscription> {
    return this.#op(async () => {
      if (mode === 'plaintext') this.#refuseEncryptedName(name);
      else this.#refusePlaintextName(name);
      const entry = await this.#acquire(name, mode);
      entry.listeners.add(listener);
      this.#release(entry);
      let open = true;
      return {
        name,
        close: () => {
          if (!open) return;
          open = false;
          entry.listeners.delete(listener);
          this.#maybeIdle(entry);
        },
      };
    });
  }

  /**
   * Removes the document from memory and from the store, after its pending writes, and tells
   * its subscribers (`removed`). Writes that arrive afterwards start a new document.
   */
  remove(name: DocName): Promise<void> {
    return this.#op(async () => {
      this.#open();
      const previous = this.#removals.get(name);
      if (previous) await previous.catch(() => undefined);
      const removal = this.#remove(name);
      this.#removals.set(name, removal);
      try {
        await removal;
      } finally {
        if (this.#removals.get(name) === removal) this.#removals.delete(name);
      }
    });
  }

  async #remove(name: DocName): Promise<void> {
    const entry = this.#entries.get(name);
    try {
      if (entry) {
        entry.removed = true;
        // Operations admitted before the removal go first: they are ordered before it.
        await this.#quiesce(entry);
        await entry.tail;
        await entry.compaction;
      }
      await this.#store.remove(name);
    } catch (error) {
      if (entry) {
        // Nothing was removed: the document stays usable as it was.
        entry.removed = false;
        this.#maybeIdle(entry);
      }
      throw error;
    }
    if (!entry) return;
    this.#drop(entry);
    for (const listener of entry.listeners) {
      this.#call(name, () => listener.removed?.());
    }
    entry.listeners.clear();
  }

  /**
   * Appends an encrypted envelope to the document's log (after `verifyEnvelope`, if set) and
   * resolves with its seq once committed; encrypted subscribers then receive it.
   */
  async appendEncrypted(
    name: DocName,
    envelope: Uint8Array,
    context?: WriteContext,
  ): Promise<{ seq: number }> {
    return (await this.enqueueEncrypted(name, envelope, context)).committed;
  }

  /** Like {@link appendEncrypted}, but resolves once the envelope is queued for the next commit. */
  enqueueEncrypted(name: DocName, envelope: Uint8Array, context?: WriteContext): Promise<PendingWrite> {
    return this.#op(async () => {
      this.#refusePlaintextName(name);
      this.#checkEnvelope(envelope, 'envelope');
      if (this.#verifyEnvelope) await this.#verifyEnvelope(name, context?.caller ?? RUNTIME, envelope);
      const entry = await this.#acquire(name, 'encrypted');
      try {
        return { committed: this.#enqueue(entry, 'encrypted', envelope, context?.origin) };
      } finally {
        this.#release(entry);
      }
    });
  }

  /**
   * Entries of an encrypted document after `sinceSeq`, in seq order. `maxBytes`/`maxEntries`
   * cut the page (at least one entry is returned when any exists); fetch again from the last
   * entry's seq while it is below `headSeq`.
   */
  fetchEncrypted(
    name: DocName,
    sinceSeq: number,
    page?: { maxBytes?: number | undefined; maxEntries?: number | undefined },
  ): Promise<EncryptedPage> {
    return this.#op(async () => {
      this.#refusePlaintextName(name);
      const entry = await this.#acquire(name, 'encrypted');
      try {
        // Head first: every entry up to it is committed, so the load below includes it.
        const head = await this.#store.head(name);
        const stored = await this.#store.load(name, sinceSeq);
        const entries = cutPage(stored, page?.maxBytes ?? Number.POSITIVE_INFINITY, page?.maxEntries);
        const last = entries.at(-1)?.seq ?? 0;
        return {
          headSeq: Math.max(head, last),
          entries: entries.map((e) => ({ seq: e.seq, envelope: e.data })),
        };
      } finally {
        this.#release(entry);
      }
    });
  }

  /**
   * Replaces every entry of an encrypted document up to `throughSeq` by `snapshot` (a client's
   * encrypted compaction). Throws Conflict when `throughSeq` is not an existing entry's seq.
   */
  snapshotEncrypted(
    name: DocName,
    throughSeq: number,
    snapshot: Uint8Array,
    context?: WriteContext,
  ): Promise<void> {
    return this.#op(async () => {
      this.#refusePlaintextName(name);
      this.#checkEnvelope(snapshot, 'snapshot');
      if (!Number.isSafeInteger(throughSeq) || throughSeq < 1) {
        throw new SyncError('BadRequest', 'throughSeq must be a positive integer');
      }
      if (this.#verifyEnvelope) await this.#verifyEnvelope(name, context?.caller ?? RUNTIME, snapshot);
      const entry = await this.#acquire(name, 'encrypted');
      try {
        await this.#store.compact(name, throughSeq, snapshot);
      } finally {
        this.#release(entry);
      }
    });
  }

  /** Resolves once every write queued so far has been committed or refused. */
  async flush(): Promise<void> {
    while (this.#queue.length > 0 || this.#draining !== null || this.#scheduled) {
      if (this.#draining) await this.#draining;
      else if (this.#queue.length > 0) await this.#drain();
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Commits everything pending, waits for running compactions, then drops every document. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    // Operations already started finish (and their writes get committed); new ones are refused.
    while (this.#ops.size > 0) await Promise.allSettled([...this.#ops]);
    await this.flush();
    await Promise.allSettled([...this.#compactions]);
    for (const entry of [...this.#entries.values()]) this.#drop(entry);
  }

  // --- loading, eviction ---------------------------------------------------------------

  /** Runs a public operation: refused once closing, tracked so that close() can wait for it. */
  #op<T>(run: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new SyncError('Unavailable', 'the relay is shutting down'));
    const op = run();
    this.#ops.add(op);
    const done = (): void => {
      this.#ops.delete(op);
    };
    op.then(done, done);
    return op;
  }

  #open(): void {
    if (this.#closed) throw new SyncError('Unavailable', 'the relay is shutting down');
  }

  #refuseEncryptedName(name: DocName): void {
    this.#open();
    if (MUST_ENCRYPT(name)) {
      throw new SyncError(
        'BadRequest',
        'USER_PRIVATE documents are end-to-end encrypted: use the encrypted channel',
      );
    }
  }

  #refusePlaintextName(name: DocName): void {
    this.#open();
    if (!ENCRYPTABLE(name)) {
      throw new SyncError('BadRequest', 'only USER_PRIVATE documents and blobs use the encrypted channel');
    }
  }

  #checkEnvelope(bytes: Uint8Array, what: string): void {
    if (!(bytes instanceof Uint8Array) || bytes.length === 0)
      throw new SyncError('InvalidMessage', `empty ${what}`);
    if (bytes.length > this.#maxEnvelopeBytes) {
      throw new SyncError('TooLarge', `${what} of ${bytes.length} bytes exceeds ${this.#maxEnvelopeBytes}`);
    }
  }

  /** Finds or creates the entry, marks it busy, and makes it ready for `mode`. Pair with #release. */
  async #acquire(name: DocName, mode: SubscribeMode): Promise<Entry> {
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
        this.#release(entry);
        throw error;
      }
      // A busy entry is neither evicted nor removed (removal waits for it), so it is still current.
      return entry;
    }
  }

  async #ready(entry: Entry, mode: SubscribeMode): Promise<void> {
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

  async #load(entry: Entry): Promise<void> {
    entry.catchup = [];
    try {
      const head = await this.#store.head(entry.name);
      const stored = await this.#store.load(entry.name);
      const doc = new Y.Doc({ gc: true });
      let skipped = 0;
      doc.transact(() => {
        skipped = applyLog(doc, stored);
        // Writes committed while we loaded, and writes applied but not yet committed.
        for (const data of entry.catchup ?? []) Y.applyUpdate(doc, data);
        for (const w of entry.inflight) Y.applyUpdate(doc, w.data);
      });
      if (skipped > 0 && skipped === stored.length) {
        doc.destroy();
        throw new SyncError('Conflict', 'the stored document is an encrypted log, not a Yjs document');
      }
      if (skipped > 0) {
        this.#log('warn', 'skipped stored entries that are not Yjs updates', { doc: entry.name, skipped });
      }
      doc.on('update', () => {
        if (!entry.writing && entry.doc === doc) {
          // Someone changed a hub document outside transact/applyUpdate: that change is not
          // stored, so the document no longer matches its log. Reload it on next use.
          entry.stale = true;
          this.#log('warn', 'a hub document was changed outside DocHub.transact; reloading it', {
            doc: entry.name,
          });
        }
      });
      entry.doc?.destroy();
      entry.doc = doc;
      entry.stale = false;
      entry.mode = 'plaintext';
      entry.headSeq = Math.max(entry.headSeq, head, stored.at(-1)?.seq ?? 0);
      entry.headKnown = true;
      entry.logEntries = stored.length;
      entry.compactAt = stored.length + this.#compactAfter;
    } finally {
      entry.catchup = null;
    }
  }

  #release(entry: Entry): void {
    entry.busy -= 1;
    if (entry.busy === 0) {
      for (const wake of entry.quiet.splice(0)) wake();
    }
    this.#maybeIdle(entry);
  }

  /** Resolves once no operation is in progress on the entry. */
  async #quiesce(entry: Entry): Promise<void> {
    while (entry.busy > 0) await new Promise<void>((resolve) => entry.quiet.push(resolve));
  }

  #maybeIdle(entry: Entry): void {
    if (this.#closed || entry.removed || entry.busy > 0 || entry.listeners.size > 0 || entry.idleTimer)
      return;
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = null;
      if (entry.busy > 0 || entry.listeners.size > 0 || entry.removed) return;
      if (entry.inflight.size > 0 || entry.compaction || entry.loading) {
        this.#maybeIdle(entry); // try again later
        return;
      }
      this.#drop(entry);
    }, this.#idleMs);
    entry.idleTimer.unref();
  }

  #drop(entry: Entry): void {
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = null;
    entry.doc?.destroy();
    entry.doc = null;
    if (this.#entries.get(entry.name) === entry) {
      this.#entries.delete(entry.name);
      this.#openDocs.set(this.#entries.size);
    }
  }

  // --- writing ---------------------------------------------------------------------------

  /** A write that changed nothing: answer after the document's earlier writes have committed. */
  async #noop(entry: Entry): Promise<{ seq: number }> {
    const epoch = entry.epoch;
    await entry.tail;
    if (entry.epoch !== epoch) {
      // What made this write a no-op may have been in a batch that just failed.
      throw new SyncError('Unavailable', 'an earlier write of this document failed to commit; send it again');
    }
    return { seq: entry.headSeq };
  }

  #enqueue(entry: Entry, mode: SubscribeMode, data: Uint8Array, origin: unknown): Promise<{ seq: number }> {
    if (mode === 'plaintext') {
      // Plaintext updates reach readers before the commit, as the peers do: waiting for fsync
      // doubled edit latency. That is safe because only the ack waits for durability — a
      // writer keeps an update in its outbox until acked and resends it, and a reader that
      // holds an update the store then lost pushes it back on its next sync exchange.
      for (const listener of entry.listeners) this.#call(entry.name, () => listener.update?.(data, origin));
    }
    const committed = new Promise<{ seq: number }>((resolve, reject) => {
      const write: QueuedWrite = { entry, mode, data, origin, resolve, reject };
      if (mode === 'plaintext') entry.inflight.add(write);
      this.#queue.push(write);
    });
    entry.tail = committed.then(
      () => undefined,
      () => undefined,
    );
    this.#schedule();
    return committed;
  }

  #schedule(): void {
    if (this.#scheduled || this.#draining) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: it runs after the I/O callbacks of this loop turn, so the
    // frames of every socket that arrived together share one transaction.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#drain();
    });
  }

  #drain(): Promise<void> {
    if (this.#draining) return this.#draining;
    if (this.#queue.length === 0) return Promise.resolve();
    const run = async (): Promise<void> => {
      try {
        while (this.#queue.length > 0) {
          const batch = this.#queue;
          this.#queue = [];
          await this.#commit(batch);
        }
      } finally {
        this.#draining = null;
      }
    };
    // The first commit awaits the store before `finally` can run, so this assignment comes first.
    this.#draining = run();
    return this.#draining;
  }

  async #commit(batch: QueuedWrite[]): Promise<void> {
    const started = performance.now();
    let seqs: number[];
    try {
      seqs = await this.#store.appendBatch(batch.map((w) => ({ doc: w.entry.name, data: w.data })));
      if (seqs.length !== batch.length)
        throw new SyncError('Internal', 'the store returned a wrong number of seqs');
    } catch (error) {
      this.#commitFailures.inc();
      const docs = [...new Set(batch.map((w) => w.entry.name))];
      this.#log('error', 'the store failed to commit a batch of writes; its writers were refused', {
        docs: docs.slice(0, 20),
        writes: batch.length,
        error,
      });
      const refusal = isSyncError(error)
        ? error
        : new SyncError('Unavailable', 'the relay could not store the update', { cause: error });
      for (const w of batch) {
        if (w.mode === 'plaintext') {
          w.entry.inflight.delete(w);
          // The in-memory doc holds this update but the store does not: reload before next use.
          w.entry.stale = true;
        }
        w.entry.epoch += 1;
        w.reject(refusal);
      }
      return;
    }
    this.#commits.inc();
    this.#committedWrites.inc(batch.length);
    this.#commitSeconds.observe((performance.now() - started) / 1000);
    const touched = new Set<Entry>();
    batch.forEach((w, i) => {
      const seq = seqs[i] as number;
      const entry = w.entry;
      entry.headSeq = Math.max(entry.headSeq, seq);
      entry.logEntries += 1;
      if (w.mode === 'plaintext') {
        entry.inflight.delete(w);
        entry.catchup?.push(w.data);
      }
      touched.add(entry);
      w.resolve({ seq });
      // Encrypted entries carry their relay-assigned seq, so they can only go out now.
      if (w.mode === 'encrypted') {
        for (const listener of entry.listeners) {
          this.#call(entry.name, () => listener.encrypted?.({ seq, envelope: w.data }, w.origin));
        }
      }
    });
    for (const entry of touched) {
      if (
        entry.mode === 'plaintext' &&
        entry.logEntries >= entry.compactAt &&
        !entry.compaction &&
        !entry.removed
      ) {
        this.#startCompaction(entry);
      }
    }
  }

  /** Calls a listener; a listener that throws is reported, never allowed to break the commit loop. */
  #call(name: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#log('error', 'a document listener threw', { doc: name, error });
    }
  }

  // --- compaction ------------------------------------------------------------------------

  #startCompaction(entry: Entry): void {
    const run = this.#compact(entry).finally(() => {
      entry.compaction = null;
      entry.compactAt = entry.logEntries + this.#compactAfter;
      this.#compactions.delete(run);
      this.#maybeIdle(entry);
    });
    entry.compaction = run;
    this.#compactions.add(run);
  }

  /**
   * Replaces the committed log by one update holding the same content. Only entries already
   * committed when the log is read are replaced; anything appended meanwhile gets a higher
   * seq and stays, so no update is lost.
   */
  async #compact(entry: Entry): Promise<void> {
    try {
      const stored = await this.#store.load(entry.name);
      const last = stored.at(-1);
      if (!last || stored.length < 2) return;
      const snapshot = mergeLog(stored);
      await this.#store.compact(entry.name, last.seq, snapshot);
      entry.logEntries = Math.max(1, entry.logEntries - (stored.length - 1));
      this.#compactionsDone.inc();
    } catch (error) {
      // Conflict: the document was removed meanwhile, nothing to do. Anything else: the log is
      // intact (compaction is atomic), so report and carry on; the next commit retries.
      if (!isSyncError(error, 'Conflict') && !this.#closed) {
        this.#log('warn', 'compacting a document failed; its log is unchanged', { doc: entry.name, error });
      }
    }
  }
}

function newEntry(name: DocName): Entry {
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
    headKnown: false,
    logEntries: 0,
    compactAt: Number.POSITIVE_INFINITY,
    tail: Promise.resolve(),
    listeners: new Set(),
    busy: 0,
    quiet: [],
    compaction: null,
    removed: false,
    idleTimer: null,
    writing: false,
  };
}

/**
 * Throws SyncError('InvalidMessage') unless `update` decodes as a complete Yjs v1 update.
 * Decoding reads every struct and the delete set without touching any document.
 */
export function validateUpdate(update: Uint8Array): void {
  if (!(update instanceof Uint8Array) || update.length < 2) {
    throw new SyncError('InvalidMessage', 'a Yjs update needs at least 2 bytes');
  }
  try {
    Y.decodeUpdate(update);
  } catch (error) {
    throw new SyncError('InvalidMessage', 'malformed Yjs update', { cause: error });
  }
}

/**
 * Merges a plaintext log into one update through a fresh garbage-collecting Y.Doc (as
 * y-leveldb does), so deleted content shrinks to GC structs; pending structs (updates whose
 * dependencies never arrived) are kept by `encodeStateAsUpdate`.
 */
function mergeLog(stored: readonly StoredEntry[]): Uint8Array {
  const doc = new Y.Doc({ gc: true });
  try {
    doc.transact(() => applyLog(doc, stored));
    return Y.encodeStateAsUpdate(doc);
  } finally {
    doc.destroy();
  }
}

/**
 * Applies a stored plaintext log to `doc`, skipping entries that do not decode as Yjs updates
 * (garbage a client pushed through another channel must not make the document unloadable).
 * Returns how many were skipped.
 */
function applyLog(doc: Y.Doc, stored: readonly StoredEntry[]): number {
  let skipped = 0;
  for (const e of stored) {
    try {
      Y.decodeUpdate(e.data);
    } catch {
      skipped += 1;
      continue;
    }
    Y.applyUpdate(doc, e.data);
  }
  return skipped;
}

function cutPage(stored: StoredEntry[], maxBytes: number, maxEntries: number | undefined): StoredEntry[] {
  const limit = maxEntries ?? Number.POSITIVE_INFINITY;
  let bytes = 0;
  let count = 0;
  for (const e of stored) {
    if (count > 0 && (bytes + e.data.length > maxBytes || count >= limit)) break;
    bytes += e.data.length;
    count += 1;
  }
  return count === stored.length ? stored : stored.slice(0, count);
}
