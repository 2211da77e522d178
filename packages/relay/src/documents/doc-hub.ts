import type { Caller, DocName, DocStore, EncEntry, SubscribeMode } from '@scopesync/core';
import { SyncError } from '@scopesync/core';
import * as Y from 'yjs';
import type { EventBus } from '../events/event-bus.ts';
import type { ChangeOrigin } from '../events/relay-events.ts';
import type { Metrics } from '../metrics.ts';
import { consoleSyncLog, type SyncLog } from '../sync/sync-log.ts';
import { assertChannel, assertEnvelopeSize } from './channel-rules.ts';
import { CommitBatcher } from './commit-batcher.ts';
import { Compactor } from './compactor.ts';
import { applyOn, transactOn } from './doc-edits.ts';
import type { ReplicaApply } from './doc-feed.ts';
import { type DocEntry, type DocHold, DocRegistry } from './doc-registry.ts';
import { MergeThread } from './merge-thread.ts';
import { cutPage, validateUpdate } from './yjs-log.ts';

/**
 * Checks an encrypted envelope (or snapshot) before the hub stores it; throws a SyncError to
 * refuse it. The relay cannot decrypt, but it can verify the author's signature.
 */
export type EnvelopeVerifier = (name: DocName, caller: Caller, envelope: Uint8Array) => Promise<void>;

/** Options of a {@link DocHub}; every optional field has a default. */
export interface DocHubOptions {
  /** Where every document's log lives. The hub never closes it. */
  readonly store: DocStore;
  /** Where the hub announces document changes (`doc-updated`, `envelope-appended`). The hub never closes it. */
  readonly bus: EventBus;
  readonly metrics: Metrics;
  /** How long a document nobody uses stays in memory, in ms. Default 30 s. */
  readonly idleMs?: number | undefined;
  /** Compact a plaintext document's log once it holds this many entries (or has grown by a quarter of its bytes). Default 500. */
  readonly compactAfter?: number | undefined;
  /** How long a commit may wait for the store before its writers get Unavailable, in ms (see CommitBatcher). */
  readonly commitTimeoutMs?: number | undefined;
  /**
   * Largest a plaintext document may grow, in bytes of its encoded state, by name (so by scope);
   * a write that would pass it is refused with TooLarge. Default: no bound.
   */
  readonly maxDocBytes?: ((name: DocName) => number) | undefined;
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

/** A write the hub has applied in memory; `committed` settles once the store committed (or refused) it. */
export interface PendingWrite {
  readonly committed: Promise<{ seq: number }>;
}

/** Who writes an envelope, for its verification, and where the write comes from. */
export interface EncryptedWriteContext {
  /** The writer, passed to `verifyEnvelope`. Default: the server runtime. */
  readonly caller?: Caller | undefined;
  /** Announced with the committed envelope, e.g. so a socket can skip its own echo. */
  readonly origin: ChangeOrigin;
}

/** One page of an encrypted document's log. */
export interface EncryptedPage {
  /** The highest seq the store has assigned in this document (0 if none); at least the last entry's seq. */
  readonly headSeq: number;
  /** Entries after the requested seq, in seq order. Fewer than exist when `maxBytes`/`maxEntries` cut the page. */
  readonly entries: EncEntry[];
}

const RUNTIME: Caller = { kind: 'runtime' };

/** The origin of content the hub read from the store itself (a reload). */
const STORE_ORIGIN: ChangeOrigin = Object.freeze({ source: 'relay', relayId: 'store' });

/**
 * The relay's documents, and the only path by which one changes. A plaintext write is applied
 * in memory and announced on the bus (`doc-updated`, seq null) at once, committed with every
 * other write of the same tick, and only then acknowledged to its writer — so no writer drops
 * an update the store may still lose. An encrypted envelope (opaque, with a relay-assigned
 * seq) is announced (`envelope-appended`) once committed. Documents stay in memory while held
 * or busy, are evicted after `idleMs`, and plaintext logs are compacted as they grow.
 */
export class DocHub {
  readonly #store: DocStore;
  readonly #bus: EventBus;
  readonly #maxEnvelopeBytes: number;
  readonly #maxDocBytes: ((name: DocName) => number) | null;
  readonly #verifyEnvelope: EnvelopeVerifier | undefined;
  readonly #registry: DocRegistry;
  readonly #batcher: CommitBatcher;
  readonly #compactor: Compactor;
  readonly #mergeThread = new MergeThread();
  readonly #ops = new Set<Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(options: DocHubOptions) {
    this.#store = options.store;
    this.#bus = options.bus;
    this.#maxEnvelopeBytes = options.maxEnvelopeBytes ?? DEFAULTS.maxEnvelopeBytes;
    this.#maxDocBytes = options.maxDocBytes ?? null;
    this.#verifyEnvelope = options.verifyEnvelope;
    const log = options.log ?? consoleSyncLog;
    const compactAfter = Math.max(2, options.compactAfter ?? DEFAULTS.compactAfter);
    const { metrics } = options;
    this.#registry = new DocRegistry({
      store: this.#store,
      log,
      idleMs: options.idleMs ?? DEFAULTS.idleMs,
      compactAfter,
      openDocs: metrics.gauge('scopesync_sync_open_docs', 'Documents held in memory by the relay.'),
      loaded: metrics.counter(
        'scopesync_docs_loaded_total',
        'Documents loaded from the store into memory (a plaintext document, or an encrypted log’s head).',
      ),
      evicted: metrics.counter(
        'scopesync_docs_evicted_total',
        'Documents dropped from memory after nobody used them for the idle time.',
      ),
      // Not forwarded to other relays (a relay origin): each reloads from the store itself.
      reloaded: (name, update, seq) => {
        void this.#bus.publish({ type: 'doc-updated', name, update, seq, origin: STORE_ORIGIN });
      },
      forgotten: (name, stateVector) => {
        void this.#bus.publish({ type: 'doc-forgotten', name, stateVector });
      },
    });
    this.#compactor = new Compactor({
      store: this.#store,
      metrics,
      log,
      compactAfter,
      settled: (entry) => this.#registry.maybeIdle(entry),
      merge: (updates) => this.#mergeThread.merge(updates),
    });
    this.#batcher = new CommitBatcher({
      store: this.#store,
      metrics,
      log,
      commitTimeoutMs: options.commitTimeoutMs,
      afterCommit: (entries) => {
        for (const entry of entries) this.#compactor.consider(entry);
      },
      // Readers here and on other relays got these updates before the commit: every relay
      // reloads its copy, so none keeps serving what the store lacks; the writers resend.
      refused: (entries) => {
        for (const entry of entries) {
          void this.#bus.publish({ type: 'doc-write-failed', name: entry.name });
          // Reloaded now if held, so this relay goes on following the others' writes of it.
          this.reload(entry.name).catch((error: unknown) =>
            log('warn', 'reloading a document after a failed commit failed', { doc: entry.name, error }),
          );
        }
      },
    });
  }

  /**
   * The loaded copy of a document, for following it across relays (see `DocFeed`): `head` is
   * the seq through which it held every committed entry when loaded, `loadId` changes with
   * every load. Null when it is not in memory (or is being loaded).
   */
  replicaOf(name: DocName): { loadId: number; head: number; encrypted: boolean } | null {
    return this.#registry.replicaOf(name);
  }

  /** Names of the documents someone holds (subscribed sockets): what this relay must keep current. */
  heldNames(): Iterable<DocName> {
    return this.#registry.heldNames();
  }

  /**
   * Applies updates another relay applied or committed (it stores them; this relay never does)
   * to the loaded copy `loadId`: whether they changed it, or 'gone' when that copy is no longer
   * in memory.
   */
  applyReplicated(name: DocName, loadId: number, updates: readonly Uint8Array[]): ReplicaApply {
    return this.#registry.applyReplicated(name, loadId, updates);
  }

  /**
   * Drops the in-memory copy of a plaintext document and loads it again from the store (now, if
   * someone holds it): another relay could not store an update this copy already applied.
   */
  reload(name: DocName): Promise<void> {
    return this.#op(() => this.#registry.reload(name));
  }

  /** Documents currently held in memory. */
  get openDocs(): number {
    return this.#registry.size;
  }

  /**
   * Runs `fn` on the document in one Yjs transaction and stores the resulting update.
   * Resolves once the store committed it (with its seq), or with the current head when `fn`
   * changed nothing. `fn` must be synchronous; if it throws, its changes are discarded.
   */
  async transact(name: DocName, fn: (doc: Y.Doc) => void, origin: ChangeOrigin): Promise<{ seq: number }> {
    return (await this.enqueueTransact(name, fn, origin)).committed;
  }

  /**
   * Like {@link transact}, but resolves as soon as the change is applied in memory (and
   * announced); the returned `committed` settles after the commit.
   */
  enqueueTransact(name: DocName, fn: (doc: Y.Doc) => void, origin: ChangeOrigin): Promise<PendingWrite> {
    return this.#op(async () => {
      assertChannel(name, 'plaintext');
      const entry = await this.#registry.acquire(name, 'plaintext');
      try {
        const update = transactOn(entry, fn, origin);
        if (update === null) return { committed: this.#batcher.noop(entry) };
        if (!this.#fits(entry, update)) {
          // Already applied in memory: reload before the next use, so it vanishes there too.
          entry.stale = true;
          throw this.#tooLarge(entry);
        }
        entry.stateBytes += update.byteLength;
        return { committed: this.#writePlaintext(entry, update, origin) };
      } finally {
        this.#registry.release(entry);
      }
    });
  }

  /**
   * Applies a Yjs update (v1) received from a client and stores it. A malformed update is
   * refused with SyncError('InvalidMessage') before it touches the store or the document.
   * Resolves once committed, or with the current head when it brought nothing new.
   */
  async applyUpdate(name: DocName, update: Uint8Array, origin: ChangeOrigin): Promise<{ seq: number }> {
    return (await this.enqueueUpdate(name, update, origin)).committed;
  }

  /**
   * Like {@link applyUpdate}, but resolves as soon as the update is applied in memory (and
   * announced), so a socket can process its next frame in order while the commit is pending.
   */
  enqueueUpdate(name: DocName, update: Uint8Array, origin: ChangeOrigin): Promise<PendingWrite> {
    return this.#op(async () => {
      assertChannel(name, 'plaintext');
      validateUpdate(update);
      const entry = await this.#registry.acquire(name, 'plaintext');
      try {
        return this.#applyPlaintext(entry, update, origin);
      } finally {
        this.#registry.release(entry);
      }
    });
  }

  /**
   * Like {@link enqueueUpdate}, but in the caller's turn when someone holds the document ready
   * (a live edit on a subscribed socket): applied, announced and queued for the commit before
   * it returns. Null, having done nothing, when the document is not held ready or the hub is
   * closing — then call {@link enqueueUpdate}. Throws what `enqueueUpdate` would reject with.
   */
  enqueueHeldUpdate(name: DocName, update: Uint8Array, origin: ChangeOrigin): PendingWrite | null {
    // Held ready means an operation checked its channel and loaded it, and nothing can evict,
    // reload or remove it without first making it not ready (see `DocRegistry.held`).
    const entry = this.#held(name, 'plaintext');
    if (entry === null) return null;
    validateUpdate(update);
    return this.#applyPlaintext(entry, update, origin);
  }

  /** Applies a validated update to a ready entry and queues its commit (see {@link enqueueUpdate}). */
  #applyPlaintext(entry: DocEntry, update: Uint8Array, origin: ChangeOrigin): PendingWrite {
    // Over the bound, only what the document already holds passes (a reconnecting client's
    // SyncStep2), so a full document does not close its readers' sockets in a loop.
    if (!this.#fits(entry, update) && !holdsAlready(entry, update)) throw this.#tooLarge(entry);
    if (!applyOn(entry, update, origin)) return { committed: this.#batcher.noop(entry) };
    entry.stateBytes += update.byteLength;
    return { committed: this.#writePlaintext(entry, update, origin) };
  }

  /** Whether `update` may be added to the entry's document under the size cap. */
  #fits(entry: DocEntry, update: Uint8Array): boolean {
    if (this.#maxDocBytes === null) return true;
    // The bound depends on the name alone: asked once per entry, not parsed again on every edit.
    entry.maxBytes ??= this.#maxDocBytes(entry.name);
    return entry.stateBytes + update.byteLength <= entry.maxBytes;
  }

  #tooLarge(entry: DocEntry): SyncError {
    const max = this.#maxDocBytes?.(entry.name) ?? 0;
    return new SyncError('TooLarge', `the document would grow past ${max} bytes, the bound of its scope`);
  }

  /** Runs `fn` on the loaded document and returns its result. `fn` must not change the document. */
  read<T>(name: DocName, fn: (doc: Y.Doc) => T): Promise<T> {
    const held = this.readyDoc(name);
    if (held !== null) {
      // Held and loaded: `fn` runs now, nothing to wait for or to track (a socket's greeting and
      // its SyncStep1 answer). It sees what every write applied so far left, like any read.
      try {
        return Promise.resolve(fn(held));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.#op(async () => {
      assertChannel(name, 'plaintext');
      const entry = await this.#registry.acquire(name, 'plaintext');
      try {
        return fn(entry.doc as Y.Doc);
      } finally {
        this.#registry.release(entry);
      }
    });
  }

  /**
   * The plaintext document when someone holds it ready, to read in the caller's turn (what
   * {@link read} would run `fn` on, and like `fn`, the caller must not change it); else null.
   */
  readyDoc(name: DocName): Y.Doc | null {
    const held = this.#held(name, 'plaintext');
    return held === null ? null : (held.doc as Y.Doc);
  }

  /**
   * Resolves once every write of `name` queued so far has been committed or refused. Writes are
   * applied, and shown, before they commit: a read that waits for this first gets a value its
   * head already covers (or, for a write applied meanwhile, a value ahead of it, never behind).
   */
  async settled(name: DocName): Promise<void> {
    await this.#registry.peek(name)?.tail;
  }

  /** The store's head seq of the document: the relay's version of the object (0 if never written). */
  head(name: DocName): Promise<number> {
    return this.#op(async () => {
      const entry = this.#registry.peek(name);
      const stored = await this.#store.head(name);
      return entry ? Math.max(entry.headSeq, stored) : stored;
    });
  }

  /**
   * Keeps the document loaded (plaintext) or open (encrypted) until the hold is released; a
   * held document is never evicted. Plaintext mode loads it first: anything applied after this
   * resolves is announced on the bus, anything before is in the document — so a reader that
   * listens on the bus, then holds and reads the state, misses nothing.
   */
  hold(name: DocName, mode: SubscribeMode): Promise<DocHold> {
    // Another socket holds it ready: one more hold, at once (every socket but a document's first).
    const held = this.holdNow(name, mode);
    if (held !== null) return Promise.resolve(held);
    return this.#op(async () => {
      assertChannel(name, mode);
      return this.#registry.hold(name, mode);
    });
  }

  /**
   * One more hold of a document someone holds ready for `mode`, in the caller's turn; null when
   * none does (then {@link hold} loads it).
   */
  holdNow(name: DocName, mode: SubscribeMode): DocHold | null {
    const held = this.#held(name, mode);
    return held === null ? null : this.#registry.holdEntry(held);
  }

  /**
   * Removes the document from memory and from the store, after its pending writes. Writes that
   * arrive afterwards start a new document. Announcing the removal is the caller's job.
   */
  remove(name: DocName): Promise<void> {
    return this.#op(async () => {
      await this.#registry.remove(name);
    });
  }

  /**
   * Appends an encrypted envelope to the document's log (after `verifyEnvelope`, if set) and
   * resolves with its seq once committed; it is announced on the bus then.
   */
  async appendEncrypted(
    name: DocName,
    envelope: Uint8Array,
    context: EncryptedWriteContext,
  ): Promise<{ seq: number }> {
    return (await this.enqueueEncrypted(name, envelope, context)).committed;
  }

  /** Like {@link appendEncrypted}, but resolves once the envelope is queued for the next commit. */
  enqueueEncrypted(
    name: DocName,
    envelope: Uint8Array,
    context: EncryptedWriteContext,
  ): Promise<PendingWrite> {
    return this.#op(async () => {
      assertChannel(name, 'encrypted');
      assertEnvelopeSize(envelope, 'envelope', this.#maxEnvelopeBytes);
      if (this.#verifyEnvelope) await this.#verifyEnvelope(name, context.caller ?? RUNTIME, envelope);
      const entry = await this.#registry.acquire(name, 'encrypted');
      try {
        const { origin } = context;
        // Encrypted entries carry their relay-assigned seq, so they can only go out once committed.
        const announce = (seq: number): void => {
          void this.#bus.publish({ type: 'envelope-appended', name, entry: { seq, envelope }, origin });
        };
        return { committed: this.#batcher.enqueue(entry, 'encrypted', envelope, announce) };
      } finally {
        this.#registry.release(entry);
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
      assertChannel(name, 'encrypted');
      const entry = await this.#registry.acquire(name, 'encrypted');
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
        this.#registry.release(entry);
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
    context: EncryptedWriteContext,
  ): Promise<void> {
    return this.#op(async () => {
      assertChannel(name, 'encrypted');
      assertEnvelopeSize(snapshot, 'snapshot', this.#maxEnvelopeBytes);
      if (!Number.isSafeInteger(throughSeq) || throughSeq < 1) {
        throw new SyncError('BadRequest', 'throughSeq must be a positive integer');
      }
      if (this.#verifyEnvelope) await this.#verifyEnvelope(name, context.caller ?? RUNTIME, snapshot);
      const entry = await this.#registry.acquire(name, 'encrypted');
      try {
        await this.#store.compact(name, throughSeq, snapshot);
      } finally {
        this.#registry.release(entry);
      }
    });
  }

  /** Resolves once every write queued so far has been committed or refused. */
  flush(): Promise<void> {
    return this.#batcher.flush();
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
    await this.#batcher.flush();
    await this.#compactor.close();
    await this.#mergeThread.close();
    this.#registry.close();
  }

  /**
   * Announces a plaintext update already applied in memory, then queues its commit. Readers get
   * it before the commit, as the peers do: waiting for fsync doubled edit latency. That is safe
   * because only the ack waits for durability — a writer keeps an update in its outbox until
   * acked and resends it, and a reader that holds an update the store then lost pushes it back
   * on its next sync exchange. The announcement is not awaited: the bus orders it per document,
   * and the commit must not wait for delivery.
   */
  #writePlaintext(entry: DocEntry, update: Uint8Array, origin: ChangeOrigin): Promise<{ seq: number }> {
    const name = entry.name;
    void this.#bus.publish({ type: 'doc-updated', name, update, seq: null, origin });
    // Committed, it goes to whoever follows the document's seqs (other relays): as stored, so
    // merged with the socket's other updates of this commit that share its row and seq.
    const committed = (seq: number, stored: Uint8Array): void => {
      void this.#bus.publish({ type: 'doc-committed', name, seq, update: stored, origin });
    };
    // A socket's keystrokes of one commit make one row: one seq, one entry to load and compact.
    // Other writers (HTTP with its If-Match versions, the runtime) keep a seq per write.
    const joinAs = origin.source === 'socket' ? origin.session : undefined;
    return this.#batcher.enqueue(entry, 'plaintext', update, committed, joinAs);
  }

  /**
   * The document's entry when someone holds it ready for `mode` and the hub is open: what a
   * synchronous read or hold may use without an operation (see `DocRegistry.held`), else null.
   * No channel check here: an entry is open for `mode` only after an operation checked it.
   */
  #held(name: DocName, mode: SubscribeMode): DocEntry | null {
    return this.#closed ? null : this.#registry.held(name, mode);
  }

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
}

/** Whether the entry's document already contains everything `update` carries. */
function holdsAlready(entry: DocEntry, update: Uint8Array): boolean {
  try {
    return Y.snapshotContainsUpdate(Y.snapshot(entry.doc as Y.Doc), update);
  } catch {
    return false;
  }
}
