import {
  type Address,
  type Caller,
  type DocAccess,
  decide,
  type ErrorKind,
  HIDDEN_REASON,
  type Message,
  type ReadFlag,
  SCOPE_FLAGS,
  SyncError,
  type WriteFlag,
} from '@scopesync/core';
import {
  Awareness,
  applyAwarenessUpdate,
  encodeAwarenessUpdate,
  removeAwarenessStates,
} from 'y-protocols/awareness';
import * as Y from 'yjs';
import { Deferred } from './deferred.ts';
import type { LocalDocLog } from './local-doc-log.ts';
import { SerialQueue } from './serial-queue.ts';
import { Emitter, type Unsubscribe } from './typed-events.ts';

/** The events of a {@link DocHandle}. */
export interface DocHandleEvents {
  /** An update from the relay (another client's edit) was applied to the doc. */
  'remote-update': { readonly update: Uint8Array };
  /**
   * The relay reported this client's access to the doc (on subscribe and whenever it changes).
   * Access 'none' with reason 'not found' before any access was granted means the doc does not
   * exist yet (or is hidden): the handle stays open and waits ({@link DocHandle.waiting}).
   */
  permission: { readonly access: DocAccess; readonly reason: string };
  /** The doc caught up with the relay (after every (re)connect). */
  synced: undefined;
  /** The number of unacknowledged local updates changed. */
  pending: number;
  /** Something went wrong: a refused write, a refused subscription, a failed local write. */
  error: SyncError;
  /**
   * The doc was rebuilt from confirmed state (after a refused or forbidden write) and
   * {@link DocHandle.doc} is now a new Y.Doc: re-bind editors to `doc`.
   */
  reset: { readonly doc: Y.Doc };
  /** The handle stopped syncing for good: released, revoked (access none) or the client closed. */
  closed: { readonly reason: string };
}

/** Object flags a doc is created with (or narrowed to) when this client first writes it. */
export interface DocFlags {
  readonly read?: ReadFlag | undefined;
  readonly write?: WriteFlag | undefined;
}

/** What a handle needs from its client: the socket, the caller, and bookkeeping. */
export interface DocHandleContext {
  readonly name: string;
  readonly address: Address;
  /** True for docs synced over the encrypted channel (USER_PRIVATE, encrypted blobs). */
  readonly encrypted: boolean;
  readonly log: LocalDocLog;
  /** The caller as known locally (for `decide()`). */
  caller(): Caller;
  /** Sends one message about this doc; false when the socket is not open. */
  send(message: Message): boolean;
  /** A fresh request reference, unique on the socket. */
  nextRef(): number;
  /** Whether the socket is open now. */
  isOnline(): boolean;
  /** Opens an envelope received from the relay (encrypted docs only), checking it strictly. */
  open(envelope: Uint8Array): Promise<Uint8Array>;
  /** Opens an envelope from the local log (encrypted docs only). */
  openLocal(envelope: Uint8Array): Promise<Uint8Array>;
  /**
   * Runs before stored envelopes are sent on a socket (encrypted docs): the relay must know
   * our keys, and the doc key must be stored before anything sealed under it. A failure holds
   * the outbox back (retried with backoff).
   */
  prepareSend(): Promise<void>;
  /** The relay stored one of our envelopes (encrypted docs). */
  afterAck(): Promise<void>;
  /** Fetches document keys the relay holds for us (a rotation happened). */
  refreshKeys(): Promise<void>;
  /** Seals a whole-state snapshot (encrypted docs only). */
  sealSnapshot(state: Uint8Array): Promise<Uint8Array>;
  /** Called when the last reference is released or the handle is revoked. */
  onClosed(): void;
  /** Compact the local log after this many entries; upload a relay snapshot after this many relay entries. */
  readonly compactAfter: number;
  /** Largest tracked update the handle sends in one frame (bytes); larger outboxes go in several. */
  readonly maxSendBytes: number;
}

/** Origins of transactions the handle makes itself, so its update listener can tell them from user edits. */
const REMOTE = Symbol('scopesync:remote');
const LOAD = Symbol('scopesync:load');
/** Edits made again after a key rotation (not user edits, but stored and sent like them). */
const RESEAL = Symbol('scopesync:reseal');

/** Consecutive reseals after epoch conflicts before the edits are given up as refused. */
const MAX_RESEALS = 2;

/** How long a released handle keeps syncing to get its last edits acknowledged, milliseconds. */
const DRAIN_TIMEOUT_MS = 30_000;

/** Error kinds after which a refused write is dropped (it would be refused again); others are retried. */
const FINAL_REFUSALS: ReadonlySet<ErrorKind> = new Set<ErrorKind>([
  'BadRequest',
  'Unauthorized',
  'Forbidden',
  'NotFound',
  'Conflict',
  'PreconditionFailed',
  'TooLarge',
  'InvalidMessage',
]);

interface InFlight {
  readonly kind: 'update' | 'snapshot';
  readonly seqs: readonly number[];
}

/**
 * One synced document: its Y.Doc, loaded from the local store and kept in sync with the
 * relay over the client's single socket. Local edits are stored (and so in the outbox)
 * before they are sent, and leave the outbox only when the relay acknowledges them.
 *
 * Write through {@link DocHandle.transact} to have a forbidden write fail at once with
 * SyncError('Forbidden') and to await durability. An edit made directly on {@link doc} that
 * this client may not make is not stored or sent: the handle emits 'error' and rebuilds the
 * doc from its stored state ('reset').
 */
export class DocHandle {
  /** The document's name (`<SCOPE>/<namespace>/<key>` or `blob/<id>`). */
  readonly name: string;
  /** The parsed address. */
  readonly address: Address;
  /** True when the doc syncs end-to-end encrypted. */
  readonly encrypted: boolean;
  readonly #ctx: DocHandleContext;
  readonly #log: LocalDocLog;
  readonly #events = new Emitter<DocHandleEvents>();
  readonly #loaded = new Deferred<void>();
  readonly #synced = new Deferred<void>();
  /** Encrypted docs open envelopes asynchronously; this keeps received messages in order. */
  readonly #incoming = new SerialQueue();
  #doc: Y.Doc;
  #access: DocAccess | undefined;
  /** The relay answered "not found" and never granted access: waiting for the doc to appear. */
  #waiting = false;
  #flags: DocFlags;
  #refs = 1;
  #closed = false;
  /** True while this handle is subscribed on the current socket. */
  #subscribed = false;
  #awaitingSync = false;
  /** The relay's SyncStep1 received before we knew we may answer it. */
  #relayStateVector: Uint8Array | undefined;
  readonly #inFlight = new Map<number, InFlight>();
  /** Local seqs sent on the current socket and not yet acknowledged. */
  readonly #sent = new Set<number>();
  #flushing = false;
  #flushAgain = false;
  #lastWrite: Promise<void> = Promise.resolve();
  #serverSeq = 0;
  #resetting: Promise<void> | undefined;
  /** Created on first use of {@link awareness}, so docs nobody shows presence for stay silent. */
  #awareness: Awareness | undefined;
  /** True once the relay granted access on the current socket: awareness may flow. */
  #admitted = false;
  /** Encrypted docs: `prepareSend` succeeded on the current socket, envelopes may go. */
  #prepared = false;
  #prepareTimer: ReturnType<typeof setTimeout> | undefined;
  #prepareAttempts = 0;
  /** Encrypted docs: an entry could not be opened yet (its key unreachable); read on later. */
  #refetchTimer: ReturnType<typeof setTimeout> | undefined;
  #refetchAttempts = 0;
  /** Encrypted docs: local edits being sealed again under a rotated key. */
  #resealing: Promise<void> | undefined;
  /** Reseals since the last acknowledged edit. */
  #reseals = 0;
  /** Edits the relay refused for good, counted, so whenAcked can tell a refusal from an ack. */
  #refusals = 0;
  /** How many of those a settled whenAcked has already reported. */
  #refusalsReported = 0;
  #lastRefusal: SyncError | null = null;
  /** Set while a released handle waits for its outbox to drain: the socket closing ends the wait. */
  #onDetach: (() => void) | undefined;
  /** Encrypted docs: waiters of {@link replaceBySnapshot}, by request ref. */
  readonly #snapshotWaiters = new Map<number, Deferred<void>>();

  constructor(ctx: DocHandleContext, flags: DocFlags) {
    this.#ctx = ctx;
    this.#log = ctx.log;
    this.name = ctx.name;
    this.address = ctx.address;
    this.encrypted = ctx.encrypted;
    this.#flags = flags;
    this.#doc = this.#newDoc();
    void this.#load();
  }

  /** The Y.Doc. It is replaced (and 'reset' emitted) only when a refused edit must be undone. */
  get doc(): Y.Doc {
    return this.#doc;
  }

  /**
   * Presence on this doc (cursors, selections, names): a y-protocols `Awareness` shared with
   * every client subscribed to it, read-only sharees included. Created on first use — only
   * then does this client announce itself. Its local state is sent on every change and again
   * after each reconnect; remote states are dropped while offline and when the handle closes.
   * The relay sets `state.user.id` of every state to its sender's user id (the rest of
   * `state.user`, e.g. name and colour, is the sender's), so `user.id` can be trusted.
   * Bound to the first `doc`; it keeps working across `reset`.
   */
  get awareness(): Awareness {
    if (!this.#awareness) {
      const awareness = new Awareness(this.#doc);
      awareness.on('update', this.#onAwarenessUpdate);
      this.#awareness = awareness;
      if (this.#closed) awareness.destroy();
      else if (this.#admitted) this.#announceAwareness();
    }
    return this.#awareness;
  }

  /** Resolves once the doc holds everything the local store had. */
  get whenLoaded(): Promise<void> {
    return this.#loaded.promise;
  }

  /**
   * Resolves the first time the doc has caught up with the relay; rejects if the relay
   * refuses the doc (access none) or the handle closes first. While the handle waits for a doc
   * that does not exist yet ({@link waiting}) it stays pending, and resolves once the doc exists
   * and has synced.
   */
  get whenSynced(): Promise<void> {
    return this.#synced.promise;
  }

  /** Local updates not yet acknowledged by the relay (the doc's outbox). */
  get pending(): number {
    return this.#log.pendingCount;
  }

  /** Access as the relay last reported it (remembered across sessions); undefined before the first answer. */
  get access(): DocAccess | undefined {
    return this.#access;
  }

  /**
   * True while the relay answers "not found" (access none) and has never granted access: the
   * doc does not exist yet, or this client may not see it (the relay does not tell which). The
   * handle stays open and starts syncing when the doc becomes readable.
   */
  get waiting(): boolean {
    return this.#waiting;
  }

  /** True once the handle has stopped syncing for good. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Listens to one of the {@link DocHandleEvents}; returns the function that stops listening. */
  on<K extends keyof DocHandleEvents>(event: K, listener: (value: DocHandleEvents[K]) => void): Unsubscribe {
    return this.#events.on(event, listener);
  }

  /**
   * Changes the doc in one transaction, after checking that this client may write it: a
   * forbidden write rejects at once with SyncError('Forbidden') (offline too) and changes
   * nothing. Resolves once the change is durable in the local store (and so in the outbox).
   */
  async transact(change: (doc: Y.Doc) => void): Promise<void> {
    this.assertWritable();
    await this.#loaded.promise;
    const doc = this.#doc;
    const before = this.#lastWrite;
    doc.transact(() => change(doc));
    // The update listener ran inside transact: a new #lastWrite is this change being stored.
    if (this.#lastWrite !== before) await this.#lastWrite;
  }

  /** Throws SyncError('Forbidden') when this client may not write the doc (see `decide()`), Unavailable once closed. */
  assertWritable(): void {
    if (this.#closed) throw new SyncError('Unavailable', `the handle of ${this.name} is closed`);
    const refusal = this.#writeRefusal();
    if (refusal) throw refusal;
  }

  /** Resolves once every local edit made so far is durable in the local store. */
  async whenStored(): Promise<void> {
    await this.#lastWrite;
    await this.#log.idle();
  }

  /**
   * Resolves once the relay has acknowledged every local edit (the outbox is empty); rejects
   * with the relay's error when it refused edits for good since the last whenAcked settled
   * (they were dropped, not acked).
   */
  whenAcked(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = (): boolean => {
        if (this.#log.pendingCount === 0) {
          stop();
          closed();
          // An outbox emptied by a refusal (the edits were dropped) is not an ack: the next
          // whenAcked to settle reports it, even when the refusal came before the call.
          const unreported = this.#refusals !== this.#refusalsReported;
          this.#refusalsReported = this.#refusals;
          if (unreported && this.#lastRefusal) reject(this.#lastRefusal);
          else resolve();
          return true;
        }
        return false;
      };
      const stop = this.on('pending', () => check());
      const closed = this.on('closed', ({ reason }) => {
        stop();
        closed();
        reject(
          new SyncError('Unavailable', `the handle closed before its edits were acknowledged: ${reason}`),
        );
      });
      void this.whenStored().then(check);
    });
  }

  /**
   * Gives up this reference. When the last one goes, the doc is unsubscribed and the handle
   * closes; resolves once its local writes are durable. Idempotent per reference holder.
   */
  async release(): Promise<void> {
    if (this.#closed) return;
    this.#refs--;
    if (this.#refs > 0) return;
    await this.whenStored().catch(() => undefined);
    // Someone opened the doc again while its last writes were being stored: keep it.
    if (this.#refs > 0) return;
    if (this.#log.pendingCount > 0 && this.#ctx.isOnline()) {
      // Edits the relay does not have yet: keep syncing in the background until it does (or
      // the socket goes), instead of leaving them in the outbox until the doc is opened again.
      void this.#closeWhenDrained();
      return;
    }
    this.#close('released');
  }

  async #closeWhenDrained(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, DRAIN_TIMEOUT_MS);
      const stopPending = this.on('pending', (n) => {
        if (n === 0) done();
      });
      const stopClosed = this.on('closed', done);
      this.#onDetach = done;
      function done(): void {
        clearTimeout(timer);
        stopPending();
        stopClosed();
        resolve();
      }
      if (this.#log.pendingCount === 0) done();
    });
    this.#onDetach = undefined;
    if (this.#refs === 0) this.#close('released');
  }

  /** @internal Takes one more reference (the client returns an open handle again). */
  retain(flags: DocFlags): void {
    this.#refs++;
    if (flags.read !== undefined || flags.write !== undefined) {
      const changed = flags.read !== this.#flags.read || flags.write !== this.#flags.write;
      this.#flags = { ...this.#flags, ...flags };
      if (changed) void this.#log.updateMeta({ read: this.#flags.read, write: this.#flags.write });
      // Re-subscribing applies the new flags on the relay (owner or admin only). The relay
      // restarts the doc's sync and will not ack what was in flight: re-send it after the answer.
      if (changed && this.#subscribed) {
        this.#inFlight.clear();
        this.#sent.clear();
        this.#relayStateVector = undefined;
        // The relay dropped our presence with the old subscription: announce again once admitted.
        this.#admitted = false;
        this.#sendSubscribe();
      }
    }
  }

  /** @internal The socket opened: subscribe and catch up, once the local state is loaded. */
  attach(): void {
    this.#loaded.promise.then(
      () => {
        if (this.#closed || this.#subscribed || !this.#ctx.isOnline()) return;
        this.#subscribed = true;
        this.#sendSubscribe();
      },
      // A doc that could not be loaded is not synced (the load failure was reported as 'error').
      () => undefined,
    );
  }

  /** @internal The socket closed: everything in flight will be re-sent on the next socket. */
  detach(): void {
    this.#onDetach?.();
    this.#subscribed = false;
    this.#admitted = false;
    this.#prepared = false;
    this.#clearPrepareTimer();
    for (const waiter of this.#snapshotWaiters.values()) {
      waiter.reject(
        new SyncError('Unavailable', `the connection closed before the snapshot of ${this.name} was stored`),
      );
    }
    this.#snapshotWaiters.clear();
    this.#dropRemoteAwareness();
    this.#awaitingSync = false;
    this.#relayStateVector = undefined;
    this.#inFlight.clear();
    this.#sent.clear();
  }

  /** @internal The value was deleted: drop the local copy and start over with an empty doc. */
  async wipe(): Promise<void> {
    await this.whenStored().catch(() => undefined);
    await this.#log.purge();
    this.#inFlight.clear();
    this.#sent.clear();
    this.#doc.off('update', this.#onUpdate);
    this.#doc = this.#newDoc();
    this.#events.emit('reset', { doc: this.#doc });
    this.#events.emit('pending', 0);
  }

  /** @internal The client is closing. */
  async shutdown(): Promise<void> {
    await this.whenStored().catch(() => undefined);
    this.#close('client closed');
  }

  /** @internal A message about this doc arrived. */
  receive(message: Message): void {
    if (this.#closed) return;
    if (this.encrypted) {
      void this.#incoming.run(() => this.#receive(message)).catch((error) => this.#fail(error, 'Internal'));
    } else {
      this.#receive(message).catch((error) => this.#fail(error, 'Internal'));
    }
  }

  // ---------------------------------------------------------------- loading

  #newDoc(): Y.Doc {
    const doc = new Y.Doc();
    doc.on('update', this.#onUpdate);
    return doc;
  }

  async #load(): Promise<void> {
    try {
      const updates = await this.#log.load();
      const meta = this.#log.meta;
      this.#access = meta.access;
      this.#waiting = meta.access === 'none' && meta.accessReason === HIDDEN_REASON;
      this.#serverSeq = meta.lastServerSeq;
      if (this.#flags.read === undefined && this.#flags.write === undefined) {
        this.#flags = { read: meta.read, write: meta.write };
      } else if (this.#flags.read !== meta.read || this.#flags.write !== meta.write) {
        await this.#log.updateMeta({ read: this.#flags.read, write: this.#flags.write });
      }
      if (updates.length > 0) Y.applyUpdate(this.#doc, Y.mergeUpdates(updates), LOAD);
      this.#loaded.resolve();
      this.#events.emit('pending', this.#log.pendingCount);
    } catch (error) {
      const failure = asSyncError(error, 'Internal', `loading ${this.name} from the local store failed`);
      this.#loaded.reject(failure);
      this.#synced.reject(failure);
      this.#events.emit('error', failure);
    }
  }

  // ---------------------------------------------------------------- local edits

  readonly #onUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === REMOTE || origin === LOAD) return;
    const refusal = this.#closed
      ? new SyncError('Unavailable', `the handle of ${this.name} is closed; the edit was not stored`)
      : this.#writeRefusal();
    if (refusal) {
      // The edit is already in the Y.Doc (direct edits cannot be vetoed): keep it out of the
      // store and the outbox, report it, and rebuild the doc from what is stored.
      this.#events.emit('error', refusal);
      if (!this.#closed) void this.#reset(false);
      return;
    }
    const write = this.#log.appendLocal(update).then(
      ({ seq, payload }) => {
        this.#events.emit('pending', this.#log.pendingCount);
        this.#sendLocal([{ seq, payload }]);
        void this.#compact();
      },
      (error: unknown) => {
        const failure = asSyncError(error, 'Internal', `storing a local edit of ${this.name} failed`);
        this.#events.emit('error', failure);
        throw failure;
      },
    );
    this.#lastWrite = write;
    write.catch(() => undefined);
  };

  #writeRefusal(): SyncError | undefined {
    // Waiting for a doc to appear: the relay has not refused a write, decide() alone answers.
    if (this.#access === 'read' || (this.#access === 'none' && !this.#waiting)) {
      return new SyncError('Forbidden', `you have ${this.#access} access to ${this.name}`);
    }
    const decision = decide({
      caller: this.#ctx.caller(),
      action: 'write',
      address: this.address,
      object: null,
    });
    if (!decision.allowed) return new SyncError('Forbidden', `cannot write ${this.name}: ${decision.reason}`);
    return undefined;
  }

  /** Sends stored local entries if the socket is open and the relay lets us write. */
  #sendLocal(entries: readonly { seq: number; payload: Uint8Array }[]): void {
    if (!this.#subscribed || this.#access !== 'read-write') return;
    if (this.encrypted && !this.#prepared) return;
    const fresh = entries.filter((e) => !this.#sent.has(e.seq));
    if (fresh.length === 0) return;
    if (this.encrypted) {
      // Envelopes cannot be merged: one append each.
      for (const e of fresh) this.#sendTracked([e.seq], e.payload);
      return;
    }
    let batch: { seq: number; payload: Uint8Array }[] = [];
    let bytes = 0;
    const sendBatch = (): void => {
      if (batch.length === 0) return;
      const update =
        batch.length === 1
          ? (batch[0] as { payload: Uint8Array }).payload
          : Y.mergeUpdates(batch.map((e) => e.payload));
      this.#sendTracked(
        batch.map((e) => e.seq),
        update,
      );
      batch = [];
      bytes = 0;
    };
    for (const e of fresh) {
      if (bytes + e.payload.length > this.#ctx.maxSendBytes) sendBatch();
      batch.push(e);
      bytes += e.payload.length;
    }
    sendBatch();
  }

  #sendTracked(seqs: readonly number[], data: Uint8Array): void {
    const ref = this.#ctx.nextRef();
    const message: Message = this.encrypted
      ? { type: 'enc-append', ref, envelope: data }
      : { type: 'tracked-update', ref, update: data };
    if (!this.#ctx.send(message)) return;
    this.#inFlight.set(ref, { kind: 'update', seqs });
    for (const s of seqs) this.#sent.add(s);
  }

  /** Re-sends the whole outbox (after the relay granted read-write on a fresh socket). */
  async #flush(): Promise<void> {
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    this.#flushing = true;
    try {
      do {
        this.#flushAgain = false;
        const pending = await this.#log.loadPending();
        this.#sendLocal(pending);
      } while (this.#flushAgain);
    } finally {
      this.#flushing = false;
    }
  }

  async #compact(): Promise<void> {
    if (this.#log.size <= this.#ctx.compactAfter) return;
    try {
      const result = await this.#log.compactIfNeeded();
      if (result.pendingMergedThrough !== undefined) {
        // The merged pending entry replaces entries that may be in flight: forget them and
        // send the merged entry instead (acks for the old refs are then ignored).
        const through = result.pendingMergedThrough;
        for (const [ref, flight] of this.#inFlight)
          if (flight.seqs.some((s) => s <= through)) this.#inFlight.delete(ref);
        for (const s of [...this.#sent]) if (s <= through) this.#sent.delete(s);
        await this.#flush();
      }
    } catch (error) {
      this.#events.emit('error', asSyncError(error, 'Internal', `compacting ${this.name} failed`));
    }
  }

  // ---------------------------------------------------------------- the relay

  #sendSubscribe(): void {
    const mode = this.encrypted ? 'encrypted' : 'plaintext';
    this.#ctx.send({
      type: 'subscribe',
      mode,
      sinceSeq: this.encrypted ? this.#serverSeq : 0,
      read: this.#flags.read,
      write: this.#flags.write,
    });
    this.#awaitingSync = true;
    if (this.encrypted) this.#ctx.send({ type: 'enc-fetch', sinceSeq: this.#serverSeq });
    else this.#ctx.send({ type: 'sync-step1', stateVector: Y.encodeStateVector(this.#doc) });
  }

  async #receive(message: Message): Promise<void> {
    switch (message.type) {
      case 'permission':
        await this.#onPermission(message.access, message.reason);
        return;
      case 'sync-step1':
        if (this.#access === 'read-write') this.#answerStep1(message.stateVector);
        else this.#relayStateVector = message.stateVector;
        return;
      case 'sync-step2':
        this.#applyRemote(message.update);
        if (this.#awaitingSync) this.#markSynced();
        return;
      case 'sync-update':
        this.#applyRemote(message.update);
        return;
      case 'ack':
        await this.#onAck(message.ref, message.seq);
        return;
      case 'error':
        await this.#onError(message.ref, message.kind, message.message);
        return;
      case 'permission-denied':
        this.#events.emit(
          'error',
          new SyncError('Forbidden', message.reason || `the relay refused a write to ${this.name}`),
        );
        return;
      case 'enc-entries':
        await this.#onEncEntries(message.headSeq, message.entries);
        return;
      case 'awareness':
        // Before first use there is nobody to show it to; first use asks for the states.
        if (this.#awareness) applyAwarenessUpdate(this.#awareness, message.update, REMOTE);
        return;
      case 'query-awareness':
        if (this.#awareness) this.#sendAwareness();
        return;
      default:
        // Client-to-relay messages have no business arriving here.
        this.#events.emit(
          'error',
          new SyncError('InvalidMessage', `unexpected ${message.type} for ${this.name}`),
        );
    }
  }

  #answerStep1(stateVector: Uint8Array): void {
    this.#ctx.send({ type: 'sync-step2', update: Y.encodeStateAsUpdate(this.#doc, stateVector) });
  }

  #applyRemote(update: Uint8Array): void {
    // y-protocols' encoding of "nothing": no structs, empty delete set.
    if (update.length <= 2 && update.every((b) => b === 0)) return;
    Y.applyUpdate(this.#doc, update, REMOTE);
    void this.#log.appendRemote(update).then(
      () => this.#compact(),
      (error) =>
        this.#events.emit(
          'error',
          asSyncError(error, 'Internal', `storing a remote update of ${this.name} failed`),
        ),
    );
    this.#events.emit('remote-update', { update });
  }

  #markSynced(): void {
    this.#awaitingSync = false;
    this.#synced.resolve();
    this.#events.emit('synced', undefined);
  }

  async #onPermission(access: DocAccess, reason: string): Promise<void> {
    const granted = this.#access === 'read' || this.#access === 'read-write';
    if (access === 'none' && reason === HIDDEN_REASON && !granted) {
      // Never granted and "not found": absent (or hidden, which looks the same). Keep the handle
      // and the local copy; the relay keeps the subscription waiting and sends permission again
      // (then the sync) once the doc is readable.
      this.#access = access;
      this.#waiting = true;
      this.#events.emit('permission', { access, reason });
      await this.#log.updateMeta({ access, accessReason: reason });
      return;
    }
    this.#waiting = false;
    this.#access = access;
    const admitted = this.#subscribed && access !== 'none';
    if (admitted && !this.#admitted) {
      this.#admitted = true;
      if (this.#awareness) this.#announceAwareness();
    }
    this.#events.emit('permission', { access, reason });
    await this.#log.updateMeta({ access, accessReason: reason });
    if (access === 'none') {
      const failure = new SyncError('Forbidden', reason || `no access to ${this.name}`);
      this.#synced.reject(failure);
      // Revoked (or never granted): stop syncing and drop the local copy and its unsendable edits.
      await this.#log.purge().catch(() => undefined);
      this.#close(`access revoked${reason ? `: ${reason}` : ''}`);
      return;
    }
    if (access === 'read') {
      this.#relayStateVector = undefined;
      if (this.#log.pendingCount > 0) {
        this.#events.emit(
          'error',
          new SyncError(
            'Forbidden',
            `${this.name} is read-only for you; ${this.#log.pendingCount} unsent edit(s) were discarded`,
          ),
        );
        await this.#reset(true);
      }
      return;
    }
    if (this.#relayStateVector) {
      this.#answerStep1(this.#relayStateVector);
      this.#relayStateVector = undefined;
    }
    if (this.encrypted) {
      await this.#prepareAndFlush();
      return;
    }
    await this.#flush();
  }

  /** Encrypted docs: readies the relay for our envelopes, then sends the outbox; retries on failure. */
  async #prepareAndFlush(): Promise<void> {
    this.#clearPrepareTimer();
    if (!this.#subscribed || this.#access !== 'read-write') return;
    try {
      await this.#ctx.prepareSend();
    } catch (error) {
      this.#events.emit(
        'error',
        asSyncError(error, 'Unavailable', `preparing ${this.name} for sending failed`),
      );
      if (error instanceof SyncError && error.kind !== 'Unavailable') return; // would fail again
      // Edits stay in the outbox; try again while the socket lasts.
      const delay = Math.min(30_000, 500 * 2 ** this.#prepareAttempts++);
      this.#prepareTimer = setTimeout(() => {
        this.#prepareTimer = undefined;
        void this.#prepareAndFlush();
      }, delay);
      return;
    }
    this.#prepareAttempts = 0;
    if (!this.#subscribed || this.#access !== 'read-write') return;
    this.#prepared = true;
    await this.#flush();
  }

  #clearPrepareTimer(): void {
    if (this.#prepareTimer !== undefined) clearTimeout(this.#prepareTimer);
    this.#prepareTimer = undefined;
    if (this.#refetchTimer !== undefined) clearTimeout(this.#refetchTimer);
    this.#refetchTimer = undefined;
  }

  /** Encrypted docs: reads the log on from the entry that could not be opened yet, later. */
  #scheduleRefetch(): void {
    if (this.#refetchTimer !== undefined || !this.#subscribed) return;
    const delay = Math.min(30_000, 1000 * 2 ** this.#refetchAttempts++);
    this.#refetchTimer = setTimeout(() => {
      this.#refetchTimer = undefined;
      if (this.#subscribed) this.#ctx.send({ type: 'enc-fetch', sinceSeq: this.#serverSeq });
    }, delay);
  }

  async #onAck(ref: number, serverSeq: number): Promise<void> {
    const flight = this.#inFlight.get(ref);
    if (!flight) return;
    this.#inFlight.delete(ref);
    if (flight.kind === 'snapshot') {
      await this.#log.updateMeta({ relayEntriesSinceSnapshot: 0 });
      this.#snapshotWaiters.get(ref)?.resolve();
      this.#snapshotWaiters.delete(ref);
      return;
    }
    for (const s of flight.seqs) this.#sent.delete(s);
    this.#reseals = 0;
    await this.#log.markAcked(flight.seqs, this.encrypted ? serverSeq : 0);
    if (this.encrypted && serverSeq > this.#serverSeq) {
      // Our own entry is part of the relay's log too (it is not echoed back to us). Entries of
      // others committed before it reached us first: the relay pushes in commit order.
      this.#serverSeq = serverSeq;
      await this.#log.updateMeta({ lastServerSeq: serverSeq });
    }
    this.#events.emit('pending', this.#log.pendingCount);
    if (this.encrypted) {
      this.#ctx.afterAck().catch((error) => this.#fail(error, 'Unavailable'));
      void this.#maybeUploadSnapshot();
    }
  }

  async #onError(ref: number, kind: ErrorKind, text: string): Promise<void> {
    const error = new SyncError(kind, text || `the relay refused a request about ${this.name}`);
    if (ref === 0) {
      // The relay ended this doc's subscription.
      this.#subscribed = false;
      this.#admitted = false;
      this.#awaitingSync = false;
      this.#synced.reject(error);
      this.#events.emit('error', error);
      return;
    }
    const flight = this.#inFlight.get(ref);
    if (!flight) {
      this.#events.emit('error', error);
      return;
    }
    this.#inFlight.delete(ref);
    if (flight.kind === 'snapshot') {
      // A snapshot the relay would not take costs nothing: the log stays as it is.
      await this.#log.updateMeta({ relayEntriesSinceSnapshot: 0 });
      this.#snapshotWaiters.get(ref)?.reject(error);
      this.#snapshotWaiters.delete(ref);
      return;
    }
    for (const s of flight.seqs) this.#sent.delete(s);
    if (this.encrypted && kind === 'Conflict' && this.#reseals < MAX_RESEALS) {
      // Sealed under a key the owner has since rotated: seal the same edits again under the
      // new key instead of dropping them. (Counted: a Conflict that a new key does not cure
      // falls through to the refusal below.)
      if (!this.#resealing) this.#reseals++;
      await this.#resealAfterRotation(error);
      return;
    }
    this.#events.emit('error', error);
    if (FINAL_REFUSALS.has(kind)) {
      this.#refusals += 1;
      this.#lastRefusal = error;
      // The relay will never take these edits: drop them and rebuild from confirmed state;
      // the re-sync that follows brings back everything the relay has.
      await this.#reset(true);
    }
  }

  async #onEncEntries(
    headSeq: number,
    entries: readonly { seq: number; envelope: Uint8Array }[],
  ): Promise<void> {
    // Waiting to read on from an entry we could not open yet: later entries come again with
    // the re-fetch, in order.
    if (this.#refetchTimer !== undefined) return;
    for (const entry of entries) {
      if (entry.seq <= this.#serverSeq) continue;
      let update: Uint8Array;
      try {
        update = await this.#ctx.open(entry.envelope);
      } catch (error) {
        const failure = asSyncError(
          error,
          'InvalidMessage',
          `entry ${entry.seq} of ${this.name} did not open`,
        );
        this.#events.emit(
          'error',
          new SyncError(failure.kind, `refused entry ${entry.seq} of ${this.name}: ${failure.message}`, {
            cause: error,
          }),
        );
        // A key we could not fetch (the relay unreachable over HTTP): stop here and read on
        // from this entry after the next reconnect. Anything else is a bad envelope: refuse it,
        // never apply it, never store it, and read on.
        if (failure.kind === 'Unavailable') {
          this.#scheduleRefetch();
          return;
        }
        this.#serverSeq = entry.seq;
        continue;
      }
      try {
        Y.applyUpdate(this.#doc, update, REMOTE);
      } catch (error) {
        // Authentic but not a Yjs update (a member's buggy client): refused like a bad envelope.
        this.#events.emit(
          'error',
          new SyncError('InvalidMessage', `refused entry ${entry.seq} of ${this.name}: not a Yjs update`, {
            cause: error,
          }),
        );
        this.#serverSeq = entry.seq;
        continue;
      }
      this.#serverSeq = entry.seq;
      // Stored as received: ciphertext at rest.
      await this.#log.appendRemote(entry.envelope, entry.seq);
      await this.#log.updateMeta({
        relayEntriesSinceSnapshot: (this.#log.meta.relayEntriesSinceSnapshot ?? 0) + 1,
      });
      this.#events.emit('remote-update', { update });
    }
    this.#refetchAttempts = 0;
    void this.#compact();
    if (this.#awaitingSync && this.#serverSeq >= headSeq) this.#markSynced();
    void this.#maybeUploadSnapshot();
  }

  /**
   * @internal Encrypted docs: replaces the relay's log by one snapshot of the whole doc, sealed
   * under the current key (after a key rotation, so the relay raises the doc's epoch floor and
   * nothing under the old key remains). Waits until the doc is synced and every local edit
   * acknowledged; resolves once the relay stored the snapshot.
   */
  async replaceBySnapshot(): Promise<void> {
    if (!this.encrypted) throw new SyncError('BadRequest', `${this.name} is not encrypted`);
    await this.whenSynced;
    await this.whenAcked();
    if (!this.#subscribed || this.#access !== 'read-write') {
      throw new SyncError('Unavailable', `${this.name} is not writable on the relay right now`);
    }
    const snapshot = await this.#ctx.sealSnapshot(Y.encodeStateAsUpdate(this.#doc));
    const ref = this.#ctx.nextRef();
    const waiter = new Deferred<void>();
    // Through the newest entry we hold; an empty log has nothing to replace: append it instead.
    const sent =
      this.#serverSeq > 0
        ? this.#ctx.send({ type: 'enc-snapshot', ref, throughSeq: this.#serverSeq, snapshot })
        : this.#ctx.send({ type: 'enc-append', ref, envelope: snapshot });
    if (!sent)
      throw new SyncError(
        'Unavailable',
        `the connection closed before the snapshot of ${this.name} was sent`,
      );
    this.#inFlight.set(ref, { kind: 'snapshot', seqs: [] });
    this.#snapshotWaiters.set(ref, waiter);
    await waiter.promise;
  }

  /**
   * An append was refused as sealed under an old epoch: fetch the rotated key, rebuild the doc
   * from what the relay confirmed, and make the unconfirmed edits again (sealed under the new
   * key, stored and sent as new local edits).
   */
  #resealAfterRotation(cause: SyncError): Promise<void> {
    this.#resealing ??= (async () => {
      try {
        await this.#ctx.refreshKeys();
        await this.#lastWrite.catch(() => undefined);
        const pending = await this.#log.loadPending();
        const updates = await Promise.all(pending.map((e) => this.#ctx.openLocal(e.payload)));
        await this.#reset(true);
        if (updates.length > 0 && !this.#closed) {
          // Not LOAD/REMOTE: the update listener stores and sends them like fresh edits.
          Y.applyUpdate(this.#doc, Y.mergeUpdates(updates), RESEAL);
          await this.#lastWrite;
        }
      } catch (error) {
        this.#events.emit('error', cause);
        this.#events.emit('error', asSyncError(error, 'Internal', `sealing ${this.name} again failed`));
        await this.#reset(true);
      } finally {
        this.#resealing = undefined;
      }
    })();
    return this.#resealing;
  }

  /**
   * Encrypted docs are compacted by their clients: once the relay holds many entries past the
   * last snapshot and nothing of ours is pending, upload the whole state as a snapshot.
   */
  async #maybeUploadSnapshot(): Promise<void> {
    if (!this.encrypted || !this.#subscribed || this.#awaitingSync || this.#access !== 'read-write') return;
    if (
      (this.#log.meta.relayEntriesSinceSnapshot ?? 0) < this.#ctx.compactAfter ||
      this.#log.pendingCount > 0
    )
      return;
    if ([...this.#inFlight.values()].some((f) => f.kind === 'snapshot')) return;
    const throughSeq = this.#serverSeq;
    if (throughSeq === 0) return;
    const snapshot = await this.#ctx.sealSnapshot(Y.encodeStateAsUpdate(this.#doc));
    const ref = this.#ctx.nextRef();
    if (this.#ctx.send({ type: 'enc-snapshot', ref, throughSeq, snapshot })) {
      this.#inFlight.set(ref, { kind: 'snapshot', seqs: [] });
    }
  }

  // ---------------------------------------------------------------- awareness

  readonly #onAwarenessUpdate = (
    changes: { added: number[]; updated: number[]; removed: number[] },
    origin: unknown,
  ): void => {
    const awareness = this.#awareness;
    if (!awareness || origin === REMOTE) return;
    const id = awareness.clientID;
    // Only our own state is ours to publish: the relay strips entries for other clients anyway.
    if (changes.added.includes(id) || changes.updated.includes(id) || changes.removed.includes(id)) {
      this.#sendAwareness();
    }
  };

  #sendAwareness(): void {
    const awareness = this.#awareness;
    if (!awareness || !this.#admitted) return;
    this.#ctx.send({ type: 'awareness', update: encodeAwarenessUpdate(awareness, [awareness.clientID]) });
  }

  /** (Re)joins the doc's presence on a fresh subscription: our state, then everyone else's. */
  #announceAwareness(): void {
    const awareness = this.#awareness;
    if (!awareness) return;
    const local = awareness.getLocalState();
    // Peers saw our state removed (at clock + 1) when the old socket went: re-announcing at the
    // old clock would be ignored, so bump it. setLocalState sends through the update listener.
    if (local !== null) awareness.setLocalState(local);
    this.#ctx.send({ type: 'query-awareness' });
  }

  /** Everyone else's presence is stale once we stop hearing from the relay. */
  #dropRemoteAwareness(): void {
    const awareness = this.#awareness;
    if (!awareness) return;
    const others = [...awareness.getStates().keys()].filter((id) => id !== awareness.clientID);
    if (others.length > 0) removeAwarenessStates(awareness, others, REMOTE);
    // Forget their clocks too: after a reconnect the relay re-sends each state at the clock we
    // already saw, which y-protocols would otherwise ignore as old news.
    for (const id of [...awareness.meta.keys()]) if (id !== awareness.clientID) awareness.meta.delete(id);
  }

  // ---------------------------------------------------------------- reset and close

  /** Rebuilds the Y.Doc from the local store (dropping unconfirmed edits when `dropPending`). */
  #reset(dropPending: boolean): Promise<void> {
    if (this.#resetting) return this.#resetting;
    this.#resetting = (async () => {
      try {
        await this.#lastWrite.catch(() => undefined);
        const updates = await this.#log.reset(dropPending);
        const old = this.#doc;
        old.off('update', this.#onUpdate);
        const fresh = this.#newDoc();
        if (updates.length > 0) Y.applyUpdate(fresh, Y.mergeUpdates(updates), LOAD);
        this.#doc = fresh;
        if (dropPending) {
          this.#inFlight.clear();
          this.#sent.clear();
        }
        this.#events.emit('reset', { doc: fresh });
        this.#events.emit('pending', this.#log.pendingCount);
        if (this.#subscribed && !this.encrypted) {
          this.#awaitingSync = true;
          this.#ctx.send({ type: 'sync-step1', stateVector: Y.encodeStateVector(fresh) });
        }
      } catch (error) {
        this.#events.emit('error', asSyncError(error, 'Internal', `rebuilding ${this.name} failed`));
      } finally {
        this.#resetting = undefined;
      }
    })();
    return this.#resetting;
  }

  #close(reason: string): void {
    if (this.#closed) return;
    // Destroying announces our departure (a null state) while still subscribed, then stops its timer.
    this.#awareness?.destroy();
    this.#clearPrepareTimer();
    if (this.#subscribed) this.#ctx.send({ type: 'unsubscribe' });
    this.detach();
    this.#closed = true;
    this.#synced.reject(new SyncError('Unavailable', `${this.name} closed before it synced: ${reason}`));
    this.#ctx.onClosed();
    this.#events.emit('closed', { reason });
    this.#events.clear();
  }

  #fail(error: unknown, kind: ErrorKind): void {
    this.#events.emit('error', asSyncError(error, kind, `handling a message for ${this.name} failed`));
  }
}

/** The scope default flags of an address, for callers that want to show them. */
export function defaultFlags(address: Address): { read: ReadFlag; write: WriteFlag } {
  return address.kind === 'blob' ? { read: 1, write: 1 } : { ...SCOPE_FLAGS[address.scope].defaults };
}

function asSyncError(error: unknown, kind: ErrorKind, message: string): SyncError {
  if (error instanceof SyncError) return error;
  return new SyncError(kind, `${message}: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
  });
}
