import { type Address, type DocName, type ErrorKind, HIDDEN_REASON, isSyncError } from '@scopesync/core';
import { forEachBounded } from '../bounded-work.ts';
import type { EventBus } from '../events/event-bus.ts';
import {
  type AccessChanged,
  type DocForgotten,
  type DocRemoved,
  type DocUpdated,
  docLane,
  type EnvelopeAppended,
  type RelayEvent,
} from '../events/relay-events.ts';
import type { Counter } from '../metrics.ts';
import { AwarenessRoom } from './awareness-room.ts';
import { pushAskBack, pushEnvelope, pushUpdate } from './room-broadcast.ts';
import type { SocketSession } from './socket-session.ts';
import {
  type ActiveState,
  Subscription,
  type SubscriptionOptions,
  type SubscriptionState,
  type WriteState,
} from './subscription.ts';
import { SubscriptionDecider } from './subscription-decider.ts';
import { ADMISSION, type Decided } from './subscription-decision.ts';
import type { CheckedAccess, SyncAuthority } from './sync-authority.ts';
import type { SyncLog } from './sync-log.ts';

/** Options of a {@link SubscriptionRegistry}. */
export interface SubscriptionRegistryOptions {
  readonly bus: EventBus;
  readonly authority: SyncAuthority;
  readonly denials: Counter;
  readonly log: SyncLog;
  /** Awareness client ids one subscription may claim. */
  readonly maxAwarenessClients: number;
  /**
   * Whether this relay's access decisions in memory are current (its delivery lease holds, see
   * `DeliveryLease`). When not, every delivery of a document's content first decides its
   * subscriptions again against the store. Default: always (one relay).
   */
  readonly fresh?: (() => boolean) | undefined;
  /**
   * Takes the session's caller again from the store (a revoked credential closes it, a changed
   * level is applied); resolves with whether the session is still open. Default: keeps it.
   */
  readonly refreshCaller?: ((session: SocketSession) => Promise<boolean>) | undefined;
  /** Counts the subscriptions decided again against the store because the lease did not hold. */
  readonly storeChecks?: Counter | undefined;
}

/** What {@link SubscriptionRegistry.admit} needs to create a subscription. */
export type AdmitRequest = SubscriptionOptions & {
  readonly address: Address;
  /** Whether an absent or hidden document may be waited for (the multiplexed endpoint); else it is refused. */
  readonly mayWait: boolean;
  /**
   * Called in the document's lane as soon as the subscription exists (active or waiting), before
   * any update of the document can be pushed to it: where the endpoint announces the access.
   * Returning a message refuses the subscription instead (BadRequest: e.g. the wrong channel for
   * a blob's mode, which only a caller who may read it learns).
   */
  readonly announce?: ((sub: Subscription, encrypted: boolean | undefined) => string | null) | undefined;
};

/** The outcome of an admission. */
export type Admission =
  | {
      readonly kind: 'admitted';
      readonly sub: Subscription;
      /** The existing object's mode, when it exists (a blob is plaintext or encrypted for good). */
      readonly encrypted: boolean | undefined;
    }
  | { readonly kind: 'refused'; readonly reason: string }
  /** The endpoint's `announce` refused it (wrong channel for the blob's mode). */
  | { readonly kind: 'invalid'; readonly message: string };

/** The verdict on a subscription's write. */
export type WriteVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly kind: ErrorKind; readonly reason: string };

interface Room {
  /** The document's address, shared by all its subscriptions: each socket's own parse of the name is not kept. */
  readonly address: Address;
  readonly subs: Set<Subscription>;
  readonly awareness: AwarenessRoom;
  /**
   * The presence posing subscriptions share: where a hidden document is, they see each other as
   * the would-be creators of an absent one would, and nobody of the real room sees them.
   */
  readonly posing: AwarenessRoom;
}

const SOCKET_CLOSED: Admission = Object.freeze({ kind: 'refused', reason: 'the socket closed' });

// The write states without data, shared by every subscription (a state is never changed in place).
const WRITE_AUTHORIZED: WriteState = Object.freeze({ status: 'authorized' });
const WRITE_OK: WriteVerdict = Object.freeze({ ok: true });
const WRITE_NOT_SUBSCRIBED: WriteVerdict = Object.freeze({
  ok: false,
  kind: 'Forbidden',
  reason: 'not subscribed',
});

/** What a write to a document the socket is not subscribed to is told (the multiplexed endpoint's words). */
export const NOT_SUBSCRIBED = 'not subscribed to this document: send subscribe first';

/** One read of a document's object, made on first use and shared by every subscription decided on it. */
type SharedRead = (sub: Subscription) => Promise<CheckedAccess>;

/**
 * Every live subscription of this relay, by document, and the one place that decides what
 * each may see (asking its {@link SubscriptionDecider}, and applying the answers). Admissions,
 * re-decisions after an access change and first writes run in the document's ordering lane of
 * the event bus, so an access change (local or from another relay) is applied to every
 * subscription before any later update of that document is delivered — nothing is pushed to a
 * socket whose caller may not read the document as it is then.
 */
export class SubscriptionRegistry {
  readonly #bus: EventBus;
  readonly #authority: SyncAuthority;
  readonly #decider: SubscriptionDecider;
  readonly #denials: Counter;
  readonly #log: SyncLog;
  readonly #maxAwarenessClients: number;
  readonly #fresh: () => boolean;
  readonly #refreshCaller: (session: SocketSession) => Promise<boolean>;
  readonly #storeChecks: Counter | null;
  /**
   * When the last check of each subscription against the store started (while the delivery
   * lease did not hold): it covers every event published before then.
   */
  readonly #checkedFrom = new WeakMap<Subscription, number>();
  readonly #rooms = new Map<DocName, Room>();
  readonly #unsubscribe: Array<() => void>;
  /** Access changes and removals heard so far: a sweep's read of an object made before one is not reused. */
  #accessEvents = 0;

  constructor(options: SubscriptionRegistryOptions) {
    this.#bus = options.bus;
    this.#authority = options.authority;
    this.#decider = new SubscriptionDecider(options.authority);
    this.#denials = options.denials;
    this.#log = options.log;
    this.#maxAwarenessClients = options.maxAwarenessClients;
    this.#fresh = options.fresh ?? (() => true);
    this.#refreshCaller = options.refreshCaller ?? ((session) => Promise.resolve(!session.ended));
    this.#storeChecks = options.storeChecks ?? null;
    this.#unsubscribe = [
      this.#bus.on('doc-updated', (event) => this.#deliverUpdate(event)),
      this.#bus.on('envelope-appended', (event) => this.#deliverEnvelope(event)),
      this.#bus.on('doc-forgotten', (event) => this.#askBack(event)),
      this.#bus.on('awareness-changed', (event) => {
        // Local sockets' awareness was applied where it arrived; only other relays' is applied here.
        const origin = event.origin;
        if (origin.source !== 'relay') return;
        const deliver = (): void =>
          this.#rooms.get(event.name)?.awareness.receiveRemote(origin.relayId, event.update);
        if (!this.#fresh()) return this.#afterStoreCheck(event.name, deliver, event);
        deliver();
      }),
      this.#bus.on('access-changed', (event) => this.#redecideAll(event)),
      this.#bus.on('doc-removed', (event) => this.#redecideAll(event)),
    ];
  }

  /**
   * Decides whether a socket may start syncing a document, in the document's lane: active with
   * read (or read-write) access; active read-write on an object the caller may create that does
   * not exist yet; waiting (absent or hidden, when `mayWait`); or refused. A cross-user read
   * is audited when it starts; a refusal is audited as an attempt.
   */
  admit(request: AdmitRequest): Promise<Admission> {
    return this.#bus.serialize(docLane(request.address.name), async () => {
      const { session, address } = request;
      if (session.ended) return SOCKET_CLOSED;
      return this.#admitted(request, await this.#decider.decide(session.caller, address, ADMISSION));
    });
  }

  /**
   * {@link admit} in the caller's turn, when it can be answered so: the document's lane is idle
   * (no event of it can come between, since nothing here waits) and the store answers the
   * decision at once with nothing to record (a refusal, or a cross-user read, is recorded
   * through `admit`). Undefined, having done nothing, otherwise.
   */
  admitNow(request: AdmitRequest): Admission | undefined {
    const { session, address } = request;
    if (this.#bus.laneIdle?.(docLane(address.name)) !== true) return undefined;
    if (session.ended) return SOCKET_CLOSED;
    const read = this.#authority.probeNow?.(session.caller, 'read', address);
    if (read === undefined) return undefined;
    const decided = this.#decider.decideNow(read, session.caller, address, ADMISSION);
    return decided === undefined ? undefined : this.#admitted(request, decided);
  }

  /** The subscription an admission's decision makes (active, waiting or none), announced. */
  #admitted(request: AdmitRequest, decided: Decided): Admission {
    if (decided.kind !== 'active') this.#denials.inc();
    if (decided.kind === 'active' || (decided.kind === 'hidden' && request.mayWait)) {
      const encrypted = decided.kind === 'active' ? decided.encrypted : undefined;
      const sub = this.#add(request, decided.kind === 'active' ? decided.state : { phase: 'waiting' });
      const invalid = request.announce?.(sub, encrypted) ?? null;
      if (invalid !== null) {
        this.end(sub);
        return { kind: 'invalid', message: invalid };
      }
      return { kind: 'admitted', sub, encrypted };
    }
    return { kind: 'refused', reason: decided.reason };
  }

  /**
   * The verdict on a write of `sub` when its state already holds it — not subscribed, writes
   * authorised since the last access decision, or a refusal already audited — else null: then
   * only {@link authorizeWrite} can answer. Answered in the caller's turn, so a live edit of an
   * authorised subscription goes on without waiting for a promise; any access change replaces
   * the state first (in the document's lane), so the answer is the current decision's.
   */
  authorizedWrite(sub: Subscription): WriteVerdict | null {
    const state = sub.state;
    if (state.phase !== 'active') return WRITE_NOT_SUBSCRIBED;
    if (state.write.status === 'authorized') return WRITE_OK;
    if (state.posing) return null;
    if (state.write.status === 'denied' && state.write.audited) {
      return { ok: false, kind: 'Forbidden', reason: state.write.reason };
    }
    return null;
  }

  /**
   * Authorises a write of `sub`: the audited write check and the object's preparation
   * (creation, requested flags) once per access decision; later writes pass at once. The
   * authority narrows access before it resolves, so the caller may then write the content.
   */
  async authorizeWrite(sub: Subscription): Promise<WriteVerdict> {
    for (;;) {
      const known = this.authorizedWrite(sub);
      if (known !== null) return known;
      const state = sub.state;
      // Narrows the type only: every state but an active one was answered above.
      if (state.phase !== 'active') return WRITE_NOT_SUBSCRIBED;
      if (state.posing) return this.#unmask(sub, state);
      let verdict: WriteVerdict;
      try {
        const decision = await this.#authority.authorizeWrite(sub.session.caller, sub.address, sub.flags);
        verdict = decision.allowed ? { ok: true } : { ok: false, kind: 'Forbidden', reason: decision.reason };
      } catch (error) {
        if (!isSyncError(error)) {
          this.#log(
            'error',
            'authorising a sync write failed',
            sub.session.context({ doc: sub.name, error }),
          );
          return { ok: false, kind: 'Internal', reason: 'the relay could not authorise the write' };
        }
        return { ok: false, kind: error.kind, reason: error.message };
      }
      // Access was decided again meanwhile: decide the write again against the new state.
      if (sub.state !== state) continue;
      sub.transition({
        ...state,
        exists: true,
        write: verdict.ok ? WRITE_AUTHORIZED : { status: 'denied', reason: verdict.reason, audited: true },
      });
      return verdict;
    }
  }

  /**
   * Decides every subscription of `session` again (its caller changed level), each in its
   * document's lane. Resolves when all have been; a decision the store cannot answer ends
   * that subscription.
   */
  async redecideSession(session: SocketSession): Promise<void> {
    const subs = this.#subscriptionsOf(session);
    await forEachBounded(subs, subs.length, (sub) =>
      this.#bus.serialize(docLane(sub.name), () => this.#redecide(sub, false)),
    );
  }

  /**
   * A re-check of every socket against the store (the periodic sweep, see `SyncServer.revalidate`):
   * the function it calls for each socket decides the socket's subscriptions again, one after
   * the other (the sweep bounds its store reads, see `SWEEP_CONCURRENCY`), each in its
   * document's lane, on one read of each document's object for the whole sweep — every socket
   * of a popular document read it again before. A decision the store cannot answer closes the
   * socket, so its client reconnects and syncs again: the sweep is not about a known change.
   */
  sweep(): (session: SocketSession) => Promise<void> {
    const readOnce = this.#sweepReads();
    return async (session) => {
      await forEachBounded(this.#subscriptionsOf(session), 1, (sub) =>
        this.#bus.serialize(docLane(sub.name), () => this.#redecide(sub, false, 'close', readOnce)),
      );
    };
  }

  /** The subscription of a session that has exactly one (a single-document socket), else undefined. */
  soleSubscription(session: SocketSession): Subscription | undefined {
    const mine = session.subscriptions;
    if (mine === null) return undefined;
    if (!(mine instanceof Set)) return mine;
    return mine.size === 1 ? mine.values().next().value : undefined;
  }

  /**
   * The name string of document `name` that its room holds (equal to `name`), else `name`: a
   * socket that keeps a document's name keeps the one copy every subscription shares.
   */
  sharedName(name: DocName): DocName {
    return this.#rooms.get(name)?.address.name ?? name;
  }

  /** Ends every subscription of a session (its socket closed or its credential was revoked). */
  endSession(session: SocketSession): void {
    for (const sub of this.#subscriptionsOf(session)) this.end(sub);
    session.subscriptions = null;
  }

  /** Ends a subscription: it leaves its room (and the awareness of it) and releases its document. */
  end(sub: Subscription): void {
    if (sub.state.phase === 'ended') return;
    sub.transition({ phase: 'ended' });
    sub.hold?.release();
    sub.hold = null;
    sub.session.holdAwareness(sub.name, 0);
    const mine = sub.session.subscriptions;
    if (mine === sub || (mine instanceof Set && mine.delete(sub) && mine.size === 0)) {
      sub.session.subscriptions = null;
    }
    const room = this.#rooms.get(sub.name);
    if (room?.subs.delete(sub)) {
      room.awareness.leave(sub);
      room.posing.leave(sub);
      if (room.subs.size === 0) this.#rooms.delete(sub.name);
    }
  }

  /**
   * Null while this relay's access decisions in memory are current (the delivery lease holds).
   * Otherwise a promise that settles once `sub` has been decided again against the store, in its
   * document's lane: what a socket asks for (a SyncStep1, a fetch) is answered after it.
   */
  current(sub: Subscription): Promise<void> | null {
    if (this.#fresh()) return null;
    return this.#bus.serialize(docLane(sub.name), async () => {
      if (!sub.active || sub.posing) return;
      const started = performance.now();
      this.#storeChecks?.inc();
      if (await this.#refreshCaller(sub.session)) await this.#redecide(sub, false, 'close');
      this.#checkedFrom.set(sub, started);
    });
  }

  /**
   * Applies an awareness update from an active subscription, bound to its caller, broadcasts
   * it to the room and publishes what was accepted (for the other relays). While the delivery
   * lease does not hold, the room's subscriptions are decided again against the store first.
   */
  receiveAwareness(sub: Subscription, update: Uint8Array): void {
    if (!sub.active) return;
    if (!this.#fresh()) {
      void this.#bus.serialize(docLane(sub.name), () =>
        this.#afterStoreCheck(sub.name, () => this.#applyAwareness(sub, update)),
      );
      return;
    }
    this.#applyAwareness(sub, update);
  }

  #applyAwareness(sub: Subscription, update: Uint8Array): void {
    if (!sub.active) return;
    const room = this.#rooms.get(sub.name);
    if (sub.posing) {
      // Stays among the posing subscriptions of this relay: nothing of it reaches the real room.
      room?.posing.receive(sub, update);
      return;
    }
    const accepted = room?.awareness.receive(sub, update) ?? null;
    if (accepted === null) return;
    void this.#bus.publish({
      type: 'awareness-changed',
      name: sub.name,
      update: accepted,
      origin: { source: 'socket', session: sub.session.id },
    });
  }

  /** The current awareness states `sub` may see (a posing one: its fellow posers') as one update, or null. */
  awarenessStates(sub: Subscription): Uint8Array | null {
    const room = this.#rooms.get(sub.name);
    return (sub.posing ? room?.posing : room?.awareness)?.encodeStates() ?? null;
  }

  /** Stops reacting to events. */
  close(): void {
    for (const off of this.#unsubscribe.splice(0)) off();
  }

  /**
   * The first write of a posing subscription: recorded as the refused attempt it is, then the
   * subscription ends as if someone had just created the object, and the write is refused as
   * one to a document not subscribed to. It never writes into the hidden object, even where
   * the caller may write without reading (staff on an owner-read draft).
   */
  async #unmask(sub: Subscription, state: ActiveState): Promise<WriteVerdict> {
    await this.#authority.check(sub.session.caller, 'read', sub.address);
    if (sub.state === state) {
      this.#denials.inc();
      this.#lose(sub, HIDDEN_REASON, false);
    }
    return { ok: false, kind: 'BadRequest', reason: NOT_SUBSCRIBED };
  }

  #add(request: AdmitRequest, state: SubscriptionState): Subscription {
    const name = request.address.name;
    let room = this.#rooms.get(name);
    if (!room) {
      room = {
        address: request.address,
        subs: new Set(),
        awareness: new AwarenessRoom({ maxClientsPerPeer: this.#maxAwarenessClients }),
        posing: new AwarenessRoom({ maxClientsPerPeer: this.#maxAwarenessClients }),
      };
      this.#rooms.set(name, room);
    }
    const sub = new Subscription(request, room.address, state);
    room.subs.add(sub);
    if (state.phase === 'active') (state.posing ? room.posing : room.awareness).join(sub);
    const mine = sub.session.subscriptions;
    if (mine === null) sub.session.subscriptions = sub;
    else if (mine instanceof Set) mine.add(sub);
    else sub.session.subscriptions = new Set([mine, sub]);
    return sub;
  }

  #subscriptionsOf(session: SocketSession): Subscription[] {
    const mine = session.subscriptions;
    if (mine === null) return [];
    return mine instanceof Set ? [...mine] : [mine];
  }

  /** An access change or a removal: every subscription of the document is decided again, here, in its lane. */
  async #redecideAll(event: AccessChanged | DocRemoved): Promise<void> {
    this.#accessEvents++;
    const room = this.#rooms.get(event.name);
    if (!room) return;
    const removed = event.type === 'doc-removed';
    const readOnce = this.#sharedRead();
    await Promise.all([...room.subs].map((sub) => this.#redecide(sub, removed, 'lose', readOnce)));
  }

  /**
   * One read of a document's object for every subscription decided again together, made when the
   * first one asks: the sockets of a popular document would otherwise each read it at once, and
   * queue for the store's connections behind one another.
   */
  #sharedRead(): SharedRead {
    let read: Promise<CheckedAccess> | undefined;
    return (sub) => (read ??= this.#readObject(sub));
  }

  /** Reads the subscription's document object, decided for its caller: what a shared read hands the others. */
  #readObject(sub: Subscription): Promise<CheckedAccess> {
    return Promise.resolve(this.#decider.probe(sub.session.caller, 'read', sub.address));
  }

  /**
   * One read of each document's object for a sweep, made when its first subscription asks. An
   * access change or removal heard after a read started may be newer than what it read, so any
   * such event (of any document: a counter, not a record per document) sends the next
   * subscription to the store again; so does a read that failed.
   */
  #sweepReads(): SharedRead {
    const reads = new Map<DocName, { readonly after: number; readonly read: Promise<CheckedAccess> }>();
    return (sub) => {
      const kept = reads.get(sub.name);
      if (kept !== undefined && kept.after === this.#accessEvents) return kept.read;
      const made = {
        after: this.#accessEvents,
        read: this.#readObject(sub),
      };
      reads.set(sub.name, made);
      made.read.catch(() => {
        if (reads.get(sub.name) === made) reads.delete(sub.name);
      });
      return made.read;
    };
  }

  /** Decides one subscription again and tells its endpoint what changed. Never rejects: a failure ends it. */
  async #redecide(
    sub: Subscription,
    removed: boolean,
    onFailure: 'lose' | 'close' = 'lose',
    readOnce?: SharedRead,
  ): Promise<void> {
    const before = sub.state;
    if (before.phase === 'ended' || sub.session.ended) return;
    if (before.phase === 'active' && removed && !before.posing) {
      // It could read the document: telling it that it was deleted reveals nothing.
      this.#denials.inc();
      this.#lose(sub, 'deleted', true);
      return;
    }
    if (before.phase === 'waiting' && removed) return; // still absent to it: nothing to tell
    try {
      const decided = await this.#decider.decide(
        sub.session.caller,
        sub.address,
        { audit: false, readAudited: before.phase === 'active' && before.readAudited && before.exists },
        await readOnce?.(sub),
      );
      // The newest decision wins; a first write decided meanwhile notices and decides again.
      const current = sub.state;
      if (current.phase === 'ended') return;
      if (decided.kind !== 'active') {
        if (current.phase === 'waiting') return; // still absent or hidden: keep waiting
        this.#denials.inc();
        this.#lose(sub, decided.reason || 'access revoked', false);
        return;
      }
      if (decided.state.posing) {
        // Posing is only ever where a subscription starts: one let in to an absent object that
        // someone else then created loses it (the object is not the caller's), as before.
        if (current.phase === 'active' && current.posing) return;
        if (current.phase === 'waiting') return;
        this.#denials.inc();
        this.#lose(sub, HIDDEN_REASON, false);
        return;
      }
      if (current.phase === 'active' && current.posing) {
        // The hidden object became absent (deleted: nothing to tell) or readable (announced
        // and started like a waiting subscription that may read now).
        sub.transition(decided.state);
        const room = this.#rooms.get(sub.name);
        room?.posing.leave(sub);
        room?.awareness.join(sub);
        if (decided.state.exists) {
          sub.listener.activated(sub);
        }
        return;
      }
      const next =
        current.phase === 'active' && current.exists && current.access === decided.state.access
          ? { ...decided.state, write: current.write } // unchanged: a checked write stays checked
          : decided.state;
      sub.transition(next);
      if (current.phase === 'waiting') {
        this.#rooms.get(sub.name)?.awareness.join(sub);
        sub.listener.activated(sub);
        return;
      }
      if (current.access !== next.access) {
        const reason = next.write.status === 'denied' ? next.write.reason : '';
        sub.listener.accessChanged(sub, next.access, reason);
      }
    } catch (error) {
      // Access could not be verified: fail closed for this subscription.
      this.#log('error', 're-deciding sync access failed; ending the subscription', {
        ...sub.session.context({ doc: sub.name, error }),
      });
      if (onFailure === 'close') {
        // A check before a delivery (no lease) or a re-check of the socket that the store could
        // not answer says nothing about the access: nothing more is sent, and the socket closes
        // so its client reconnects and syncs again — ending only the subscription would leave a
        // stock client behind for good.
        this.end(sub);
        sub.session.close(4503, 'access could not be verified');
        return;
      }
      if (isSyncError(error) && error.kind === 'Unavailable') {
        // The store is down, which says nothing of the caller's access: end the subscription
        // (nothing more reaches it) without telling the client it lost access — it would drop
        // its copy and never subscribe again (chaos #16, PostgreSQL stopped).
        this.end(sub);
        sub.listener.interrupted(sub, error);
        return;
      }
      this.#lose(sub, 'access could not be verified', false);
    }
  }

  #lose(sub: Subscription, reason: string, deleted: boolean): void {
    this.end(sub);
    sub.listener.lost(sub, reason, deleted);
  }

  /**
   * The delivery lease ran out (see `DeliveryLease`): another relay may have narrowed access
   * without this relay hearing of it yet. Every subscription of the document that could receive
   * its content takes its caller again and is decided again against the store (as after an
   * access change), here in the document's lane; only then is `deliver` called. Costs a read of
   * each subscription's caller and one of the document's object per delivery, only while the
   * lease does not hold.
   */
  async #afterStoreCheck(name: DocName, deliver: () => void, event?: RelayEvent): Promise<void> {
    const room = this.#rooms.get(name);
    if (!room) return;
    // A check that started after the event was published covers it: a burst of updates queued
    // behind one check costs one more check, not one each.
    const published = (event && this.#bus.publishedAt?.(event)) ?? performance.now();
    // Before any read: every read of this check starts after it.
    const started = performance.now();
    const callers = new Map<SocketSession, Promise<boolean>>();
    const readOnce = this.#sharedRead();
    await Promise.all(
      [...room.subs]
        .filter(
          (sub) =>
            sub.active &&
            !sub.posing &&
            (this.#checkedFrom.get(sub) ?? Number.NEGATIVE_INFINITY) <= published,
        )
        .map(async (sub) => {
          this.#storeChecks?.inc();
          let open = callers.get(sub.session);
          if (open === undefined) {
            open = this.#refreshCaller(sub.session);
            callers.set(sub.session, open);
          }
          if (await open) await this.#redecide(sub, false, 'close', readOnce);
          this.#checkedFrom.set(sub, started);
        }),
    );
    deliver();
  }

  #deliverUpdate(event: DocUpdated): void | Promise<void> {
    if (!this.#rooms.has(event.name)) return;
    if (!this.#fresh()) return this.#afterStoreCheck(event.name, () => this.#pushUpdate(event), event);
    this.#pushUpdate(event);
  }

  #pushUpdate(event: DocUpdated): void {
    const room = this.#rooms.get(event.name);
    if (room) pushUpdate(room.subs, event);
  }

  /** Asks every plaintext reader of a reloaded document for what it holds beyond the relay's copy. */
  #askBack(event: DocForgotten): void | Promise<void> {
    if (!this.#rooms.has(event.name)) return;
    if (!this.#fresh()) return this.#afterStoreCheck(event.name, () => this.#pushAskBack(event), event);
    this.#pushAskBack(event);
  }

  #pushAskBack(event: DocForgotten): void {
    const room = this.#rooms.get(event.name);
    if (room) pushAskBack(room.subs, event);
  }

  #deliverEnvelope(event: EnvelopeAppended): void | Promise<void> {
    if (!this.#rooms.has(event.name)) return;
    if (!this.#fresh()) return this.#afterStoreCheck(event.name, () => this.#pushEnvelope(event), event);
    this.#pushEnvelope(event);
  }

  #pushEnvelope(event: EnvelopeAppended): void {
    const room = this.#rooms.get(event.name);
    if (room) pushEnvelope(room.subs, event);
  }
}
