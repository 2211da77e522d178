import {
  type Address,
  type DocAccess,
  decide,
  type ErrorKind,
  type Message,
  SyncError,
} from '@scopesync/core';
import type { Awareness } from 'y-protocols/awareness';
import * as Y from 'yjs';
import { asSyncError } from './as-sync-error.ts';
import { Deferred } from './deferred.ts';
import type { DocChannel, DocChannelHost } from './doc-channel.ts';
import type { DocFlags } from './doc-flags.ts';
import type { DocHandleContext } from './doc-handle-context.ts';
import type { DocHandleEvents } from './doc-handle-events.ts';
import { DOC_ORIGINS, docOriginOf } from './doc-origin.ts';
import { DocOutbox } from './doc-outbox.ts';
import { DocPresence } from './doc-presence.ts';
import { type DocRelayHost, receiveFromRelay } from './doc-relay-messages.ts';
import { DroppedEdits } from './dropped-edits.ts';
import { EncryptedChannel } from './encrypted-channel.ts';
import type { LocalDocLog } from './local-doc-log.ts';
import { PlaintextChannel } from './plaintext-channel.ts';
import { ResendSchedule } from './resend-schedule.ts';
import { ResubscribeSchedule } from './resubscribe-schedule.ts';
import { isSubscribed, type SubscriptionPhase, transition } from './subscription-phase.ts';
import { Emitter, type Unsubscribe } from './typed-events.ts';

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
  /** How the doc's data goes over the socket: plaintext Yjs sync or the encrypted log. */
  readonly #channel: DocChannel;
  /** What the relay's messages about the doc act on (doc-relay-messages.ts). */
  readonly #relay: DocRelayHost;
  /** Sends, compacts and waits on the outbox (doc-outbox.ts). */
  readonly #outbox: DocOutbox;
  readonly #events = new Emitter<DocHandleEvents>();
  readonly #loaded = new Deferred<void>();
  readonly #synced = new Deferred<void>();
  #doc: Y.Doc;
  /** The subscription on the current socket; changed only through {@link #enter}. */
  #phase: SubscriptionPhase = { kind: 'idle' };
  /** Access as the relay last reported it, remembered across sockets and sessions. */
  #access: DocAccess | undefined;
  #flags: DocFlags;
  #refs = 1;
  #lastWrite: Promise<void> = Promise.resolve();
  #resetting: Promise<void> | undefined;
  /**
   * Why a local edit could not be stored, until the reset that takes it out of the Y.Doc: edits
   * made meanwhile may build on it (a Yjs item names its neighbours), so they are refused too.
   */
  #unstored: SyncError | undefined;
  /** Its awareness is created on first use, so docs nobody shows presence for stay silent. */
  readonly #presence: DocPresence;
  /** Edits dropped for good, so whenAcked can tell a refusal from an ack. */
  readonly #dropped = new DroppedEdits();
  /** Set while a released handle waits for its outbox to drain: the socket closing ends the wait. */
  #onDetach: (() => void) | undefined;
  /** Sends unacked edits again after a transient refusal or a silence (issue #16). */
  readonly #resubscribes = new ResubscribeSchedule(() => {
    if (this.#phase.kind === 'ended' && !this.closed && this.#ctx.isOnline()) this.#subscribe();
  });
  readonly #resends = new ResendSchedule({
    canSend: () =>
      !this.closed &&
      this.#ctx.isOnline() &&
      this.#phase.kind === 'active' &&
      this.#phase.access === 'read-write',
    hasPending: () => this.#log.pendingCount > 0,
    resend: (forget) => {
      if (forget) this.#channel.forget();
      void this.#outbox.flush();
    },
  });

  constructor(ctx: DocHandleContext, flags: DocFlags) {
    this.#ctx = ctx;
    this.#log = ctx.log;
    this.name = ctx.name;
    this.address = ctx.address;
    this.encrypted = ctx.encrypted;
    this.#flags = flags;
    this.#doc = this.#newDoc();
    this.#presence = new DocPresence({
      send: (message) => void this.#ctx.send(message),
      active: () => this.#phase.kind === 'active',
      // Encrypted docs seal our states under the doc key and open the members' ones.
      seal: (update) => this.#channel.sealAwareness(update),
      open: (update) => this.#channel.openAwareness(update),
      // Another tab of this user shares it (tab-channel.ts), following each new one.
      created: (awareness) => this.#ctx.onAwareness?.(awareness),
      failed: (error) =>
        this.#events.emit('error', asSyncError(error, 'Internal', `sending presence on ${this.name} failed`)),
    });
    const host = this.#channelHost();
    this.#channel = ctx.encrypted ? new EncryptedChannel(host) : new PlaintextChannel(host);
    this.#outbox = new DocOutbox({
      name: this.name,
      log: this.#log,
      channel: this.#channel,
      resends: this.#resends,
      dropped: this.#dropped,
      compactAfter: ctx.compactAfter,
      emit: (event, value) => this.#events.emit(event, value),
      on: (event, listener) => this.on(event, listener),
      whenStored: () => this.whenStored(),
    });
    this.#relay = this.#relayHost();
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
   * Its clientID is always {@link doc}'s: on 'reset' it is replaced by an Awareness of the new
   * doc carrying the same local state (the old one is destroyed), so read it again then.
   */
  get awareness(): Awareness {
    return this.#presence.use(this.#doc, this.closed);
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

  /** True while the doc is caught up with the relay on the current socket (false offline, and until 'synced'). */
  get synced(): boolean {
    return this.#phase.kind === 'active' && this.#phase.synced;
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
   * True while the relay answers `waiting` and has never granted access: the doc does not exist
   * yet, or this client may not see it (the relay does not tell which). The handle stays open
   * and starts syncing when the doc becomes readable.
   */
  get waiting(): boolean {
    return this.#access === 'waiting';
  }

  /** True once the handle has stopped syncing for good. */
  get closed(): boolean {
    return this.#phase.kind === 'closed';
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
    // No origin of ours: a user's edit keeps the null origin Y.UndoManager tracks by default.
    doc.transact(() => change(doc));
    // The update listener ran inside transact: a new #lastWrite is this change being stored.
    if (this.#lastWrite !== before) await this.#lastWrite;
  }

  /** Throws SyncError('Forbidden') when this client may not write the doc (see `decide()`), Unavailable once closed. */
  assertWritable(): void {
    if (this.closed) throw new SyncError('Unavailable', `the handle of ${this.name} is closed`);
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
    return this.#outbox.acked();
  }

  /**
   * Gives up this reference. When the last one goes, the doc is unsubscribed and the handle
   * closes; resolves once its local writes are durable. Idempotent per reference holder.
   */
  async release(): Promise<void> {
    if (this.closed) return;
    this.#refs--;
    if (this.#refs > 0) return;
    await this.whenStored().catch(() => undefined);
    // Someone opened the doc again while its last writes were being stored: keep it.
    if (this.#refs > 0) return;
    if (this.#log.pendingCount > 0 && this.#ctx.isOnline()) {
      // Edits the relay does not have yet: keep syncing in the background until it does (or
      // the socket goes). What is still unsent then goes on the next socket (unsent-edits.ts).
      void this.#closeWhenDrained();
      return;
    }
    await this.#closeReleased();
  }

  async #closeWhenDrained(): Promise<void> {
    await this.#outbox.drained((done) => {
      this.#onDetach = done;
    });
    this.#onDetach = undefined;
    await this.#closeReleased();
  }

  /** Closes the handle nobody holds any more, its doc's unsent mark cleared if nothing is left to send. */
  async #closeReleased(): Promise<void> {
    await this.#log.clearUnsentIfSettled().catch(() => undefined);
    // Someone opened the doc again meanwhile: keep it.
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
      // It drops our presence with the old subscription too: we announce again once admitted.
      if (changed && isSubscribed(this.#phase)) {
        this.#channel.detach();
        this.#subscribe();
      }
    }
  }

  /** @internal The socket opened: subscribe and catch up, once the local state is loaded. */
  attach(): void {
    this.#loaded.promise.then(
      () => {
        if ((this.#phase.kind !== 'idle' && this.#phase.kind !== 'ended') || !this.#ctx.isOnline()) return;
        this.#subscribe();
      },
      // A doc that could not be loaded is not synced (the load failure was reported as 'error').
      () => undefined,
    );
  }

  /** @internal The socket closed: everything in flight will be re-sent on the next socket. */
  detach(): void {
    this.#onDetach?.();
    this.#resends.stop();
    this.#resubscribes.stop();
    if (this.#phase.kind !== 'idle' && !this.closed) this.#enter({ kind: 'idle' });
    this.#channel.detach();
    this.#presence.dropRemote();
  }

  /** @internal The value was deleted: drop the local copy and start over with an empty doc. */
  async wipe(): Promise<void> {
    await this.whenStored().catch(() => undefined);
    await this.#log.purge();
    this.#channel.forget();
    this.#doc.off('update', this.#onUpdate);
    this.#unstored = undefined;
    this.#doc = this.#newDoc();
    this.#presence.rebind(this.#doc);
    this.#events.emit('reset', { doc: this.#doc });
    this.#events.emit('pending', 0);
  }

  /** @internal The client is closing. */
  async shutdown(): Promise<void> {
    await this.whenStored().catch(() => undefined);
    await this.#log.clearUnsentIfSettled().catch(() => undefined);
    this.#close('client closed');
  }

  /** @internal A message about this doc arrived. */
  receive(message: Message): void {
    if (this.closed) return;
    this.#channel
      .run(() => receiveFromRelay(this.#relay, message))
      .catch((error) => this.#fail(error, 'Internal'));
  }

  /**
   * @internal Encrypted docs: replaces the relay's log by one snapshot of the whole doc, sealed
   * under the current key (after a key rotation, so the relay raises the doc's epoch floor and
   * nothing under the old key remains). Waits until the doc is synced and every local edit
   * acknowledged; resolves once the relay stored the snapshot.
   */
  async replaceBySnapshot(): Promise<void> {
    const channel = this.#channel;
    if (!(channel instanceof EncryptedChannel))
      throw new SyncError('BadRequest', `${this.name} is not encrypted`);
    await this.whenSynced;
    await this.whenAcked();
    await channel.replaceBySnapshot();
  }

  // ---------------------------------------------------------------- phase

  /** The only way the subscription's phase changes: checked against the allowed moves. */
  #enter(next: SubscriptionPhase): void {
    this.#phase = transition(this.#phase, next);
  }

  #subscribe(): void {
    this.#enter({ kind: 'subscribing' });
    this.#channel.subscribe(this.#flags);
  }

  /** What the channel may use of this handle. */
  #channelHost(): DocChannelHost {
    return {
      name: this.name,
      ctx: this.#ctx,
      log: this.#log,
      doc: () => this.#doc,
      subscribed: () => isSubscribed(this.#phase),
      writable: () => this.#phase.kind === 'active' && this.#phase.access === 'read-write',
      closed: () => this.closed,
      synced: () => this.#markSynced(),
      emit: (event, value) => this.#events.emit(event, value),
      fail: (error, kind) => this.#fail(error, kind),
      stored: () => this.#lastWrite,
      reset: (dropPending) => this.#reset(dropPending),
      flush: () => this.#outbox.flush(),
      compact: () => void this.#outbox.compact(),
    };
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
      // Before `waiting` had its own value a waiting doc was remembered as 'none'; an ended
      // subscription purges its record, so a remembered 'none' is always one of those.
      this.#access = meta.access === 'none' ? 'waiting' : meta.access;
      this.#channel.loaded(meta);
      if (this.#flags.read === undefined && this.#flags.write === undefined) {
        this.#flags = { read: meta.read, write: meta.write };
      } else if (this.#flags.read !== meta.read || this.#flags.write !== meta.write) {
        await this.#log.updateMeta({ read: this.#flags.read, write: this.#flags.write });
      }
      // One transaction (one 'update' event), applying the stored state and then its tail:
      // Y.mergeUpdates first would decode and re-encode the whole state before applying it.
      const doc = this.#doc;
      if (updates.length > 0)
        doc.transact(() => {
          for (const update of updates) Y.applyUpdate(doc, update, DOC_ORIGINS.store);
        }, DOC_ORIGINS.store);
      this.#loaded.resolve();
      this.#events.emit('pending', this.#log.pendingCount);
      // After the load resolved, off the path of the first read: the next start reads less.
      void this.#outbox.compact(() => this.#log.compactSettled());
    } catch (error) {
      const failure = asSyncError(error, 'Internal', `loading ${this.name} from the local store failed`);
      this.#loaded.reject(failure);
      this.#synced.reject(failure);
      this.#events.emit('error', failure);
    }
  }

  // ---------------------------------------------------------------- local edits

  readonly #onUpdate = (update: Uint8Array, origin: unknown): void => {
    switch (docOriginOf(origin)?.source) {
      case 'relay':
      case 'store':
      case 'reset':
        return; // already stored, or confirmed by the relay
      case 'reseal':
      case 'tab': // another tab's edit: kept and sent here too (tab-channel.ts)
      case undefined:
        break; // an edit to store and send
    }
    const refusal = this.closed
      ? new SyncError('Unavailable', `the handle of ${this.name} is closed; the edit was not stored`)
      : this.#writeRefusal();
    if (refusal) {
      // The edit is already in the Y.Doc (direct edits cannot be vetoed): keep it out of the
      // store and the outbox, report it, and rebuild the doc from what is stored.
      this.#events.emit('error', refusal);
      if (!this.closed) void this.#reset(false);
      return;
    }
    const doc = this.#doc;
    const write = this.#log.appendLocal(update).then(
      ({ seq, payload }) => {
        this.#events.emit('pending', this.#log.pendingCount);
        this.#channel.send([{ seq, payload }]);
        this.#resends.sent();
        void this.#outbox.compact();
      },
      (error: unknown) => {
        const failure = asSyncError(error, 'Internal', `storing a local edit of ${this.name} failed`);
        this.#events.emit('error', failure);
        this.#dropUnstored(doc, failure);
        throw failure;
      },
    );
    this.#lastWrite = write;
    write.catch(() => undefined);
  };

  /**
   * A local edit of `doc` could not be stored (sealing it failed: e.g. a restarted device whose
   * user the relay has not confirmed yet): it is neither durable nor sendable, so it must not stay
   * in the Y.Doc. Left there, it would show as written, and the next edits — stored and sent —
   * would name it as their neighbour: every other device would hold them back forever, waiting
   * for an item that never comes (chaos finding 12). Not an ack either: whenAcked reports it.
   */
  #dropUnstored(doc: Y.Doc, failure: SyncError): void {
    this.#dropped.add(failure);
    // An edit of a doc already replaced is not in the current one (it was never stored).
    if (this.closed || doc !== this.#doc) return;
    this.#unstored ??= failure;
    void this.#reset(false);
  }

  #writeRefusal(): SyncError | undefined {
    if (this.#unstored) {
      return new SyncError(
        this.#unstored.kind,
        `an earlier edit of ${this.name} could not be stored (${this.#unstored.message}); it is being undone`,
      );
    }
    // Waiting for a doc to appear: the relay has not refused a write, decide() alone answers.
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

  // ---------------------------------------------------------------- the relay

  /** What the relay's messages may use of this handle (doc-relay-messages.ts). */
  #relayHost(): DocRelayHost {
    return {
      name: this.name,
      address: this.address,
      log: this.#log,
      channel: this.#channel,
      presence: this.#presence,
      dropped: this.#dropped,
      resends: this.#resends,
      resubscribes: this.#resubscribes,
      synced: this.#synced,
      phase: () => this.#phase,
      enter: (next) => this.#enter(next),
      access: () => this.#access,
      setAccess: (access) => {
        this.#access = access;
      },
      emit: (event, value) => this.#events.emit(event, value),
      reset: (dropPending) => this.#reset(dropPending),
      close: (reason) => this.#close(reason),
    };
  }

  #markSynced(): void {
    if (this.#phase.kind === 'active') this.#enter({ ...this.#phase, synced: true });
    // Synced, not merely admitted: the relay admits before it loads the doc, which can fail.
    this.#resubscribes.synced();
    this.#synced.resolve();
    this.#events.emit('synced', undefined);
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
        // The store never held an unstored edit: the rebuilt doc is without it.
        this.#unstored = undefined;
        const fresh = this.#newDoc();
        if (updates.length > 0) Y.applyUpdate(fresh, Y.mergeUpdates(updates), DOC_ORIGINS.reset);
        this.#doc = fresh;
        this.#presence.rebind(fresh);
        if (dropPending) this.#channel.forget();
        this.#events.emit('reset', { doc: fresh });
        this.#events.emit('pending', this.#log.pendingCount);
        this.#channel.rebuilt();
      } catch (error) {
        this.#events.emit('error', asSyncError(error, 'Internal', `rebuilding ${this.name} failed`));
      } finally {
        this.#resetting = undefined;
      }
    })();
    return this.#resetting;
  }

  #close(reason: string): void {
    if (this.closed) return;
    // Destroying announces our departure (a null state) while still subscribed, then stops its timer.
    this.#presence.destroy();
    if (isSubscribed(this.#phase)) this.#ctx.send({ type: 'unsubscribe' });
    this.detach();
    this.#enter({ kind: 'closed', reason });
    this.#synced.reject(new SyncError('Unavailable', `${this.name} closed before it synced: ${reason}`));
    this.#ctx.onClosed();
    this.#events.emit('closed', { reason });
    this.#events.clear();
  }

  #fail(error: unknown, kind: ErrorKind): void {
    this.#events.emit('error', asSyncError(error, kind, `handling a message for ${this.name} failed`));
  }
}
