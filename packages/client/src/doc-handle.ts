import {
  type Address,
  type Caller,
  type DocAccess,
  decide,
  type ErrorKind,
  type Message,
  type ReadFlag,
  SCOPE_FLAGS,
  SyncError,
  type WriteFlag,
} from '@scopesync/core';
import * as Y from 'yjs';
import { Deferred } from './deferred.ts';
import type { LocalDocLog } from './local-doc-log.ts';
import { SerialQueue } from './serial-queue.ts';
import { Emitter, type Unsubscribe } from './typed-events.ts';

/** The events of a {@link DocHandle}. */
export interface DocHandleEvents {
  /** An update from the relay (another client's edit) was applied to the doc. */
  'remote-update': { readonly update: Uint8Array };
  /** The relay reported this client's access to the doc (on subscribe and whenever it changes). */
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
  /** Opens an envelope (encrypted docs only). */
  open(envelope: Uint8Array): Promise<Uint8Array>;
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

  /** Resolves once the doc holds everything the local store had. */
  get whenLoaded(): Promise<void> {
    return this.#loaded.promise;
  }

  /**
   * Resolves the first time the doc has caught up with the relay; rejects if the relay
   * refuses the doc (access none) or the handle closes first.
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

  /** Resolves once the relay has acknowledged every local edit (the outbox is empty). */
  whenAcked(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = (): boolean => {
        if (this.#log.pendingCount === 0) {
          stop();
          closed();
          resolve();
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
    this.#close('released');
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
    this.#subscribed = false;
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
    if (this.#access === 'read' || this.#access === 'none') {
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
      case 'query-awareness':
        // Awareness is not part of the multiplexed client yet.
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
    this.#access = access;
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
    await this.#flush();
  }

  async #onAck(ref: number, serverSeq: number): Promise<void> {
    const flight = this.#inFlight.get(ref);
    if (!flight) return;
    this.#inFlight.delete(ref);
    if (flight.kind === 'snapshot') {
      await this.#log.updateMeta({ relayEntriesSinceSnapshot: 0 });
      return;
    }
    for (const s of flight.seqs) this.#sent.delete(s);
    await this.#log.markAcked(flight.seqs, this.encrypted ? serverSeq : 0);
    this.#events.emit('pending', this.#log.pendingCount);
    if (this.encrypted) void this.#maybeUploadSnapshot();
  }

  async #onError(ref: number, kind: ErrorKind, text: string): Promise<void> {
    const error = new SyncError(kind, text || `the relay refused a request about ${this.name}`);
    if (ref === 0) {
      // The relay ended this doc's subscription.
      this.#subscribed = false;
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
      return;
    }
    for (const s of flight.seqs) this.#sent.delete(s);
    this.#events.emit('error', error);
    if (FINAL_REFUSALS.has(kind)) {
      // The relay will never take these edits: drop them and rebuild from confirmed state;
      // the re-sync that follows brings back everything the relay has.
      await this.#reset(true);
    }
  }

  async #onEncEntries(
    headSeq: number,
    entries: readonly { seq: number; envelope: Uint8Array }[],
  ): Promise<void> {
    for (const entry of entries) {
      if (entry.seq <= this.#serverSeq) continue;
      let update: Uint8Array;
      try {
        update = await this.#ctx.open(entry.envelope);
      } catch (error) {
        this.#events.emit(
          'error',
          asSyncError(error, 'InvalidMessage', `entry ${entry.seq} of ${this.name} did not open`),
        );
        this.#serverSeq = entry.seq;
        continue;
      }
      Y.applyUpdate(this.#doc, update, REMOTE);
      this.#serverSeq = entry.seq;
      // Stored as received: ciphertext at rest.
      await this.#log.appendRemote(entry.envelope, entry.seq);
      await this.#log.updateMeta({
        relayEntriesSinceSnapshot: (this.#log.meta.relayEntriesSinceSnapshot ?? 0) + 1,
      });
      this.#events.emit('remote-update', { update });
    }
    void this.#compact();
    if (this.#awaitingSync && this.#serverSeq >= headSeq) this.#markSynced();
    void this.#maybeUploadSnapshot();
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
