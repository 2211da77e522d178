import {
  type ErrorKind,
  isSyncError,
  KeyedMutex,
  type MessageOfType,
  SyncError,
  type YProtocolsMessage,
} from '@scopesync/core';
import * as Y from 'yjs';
import type { DocHub, PendingWrite } from '../documents/doc-hub.ts';
import { isEmptyUpdate, validateUpdate } from '../documents/yjs-log.ts';
import type { ChangeOrigin } from '../events/relay-events.ts';
import type { Counter } from '../metrics.ts';
import type { Subscription } from './subscription.ts';
import type { SubscriptionRegistry } from './subscription-registry.ts';
import type { SyncLog } from './sync-log.ts';

/** Paging of the encrypted log. */
export interface EntryPaging {
  /** Most entries the relay sends in one `enc-entries` frame. */
  readonly maxEntriesPerPage: number;
  /** Envelope bytes in one `enc-entries` frame (one bigger envelope still goes alone). */
  readonly maxPageBytes: number;
}

/** Options of a {@link DocumentSync}. */
export interface DocumentSyncOptions {
  readonly hub: DocHub;
  readonly registry: SubscriptionRegistry;
  readonly paging: EntryPaging;
  readonly denials: Counter;
  /** SyncStep1 frames left unanswered because their socket's send buffer was full. */
  readonly skippedSteps?: Counter | undefined;
  readonly log: SyncLog;
}

/** The encrypted-channel requests of the multiplexed endpoint. */
export type EncryptedRequest =
  | MessageOfType<'enc-append'>
  | MessageOfType<'enc-fetch'>
  | MessageOfType<'enc-snapshot'>;

/**
 * What a subscription does with its document, whichever endpoint it came through: the
 * plaintext greeting and SyncStep1/2, writes (authorised through the registry, acked after the
 * commit), awareness, and the encrypted log. The endpoints only decode frames and call this.
 */
export class DocumentSync {
  readonly #hub: DocHub;
  readonly #registry: SubscriptionRegistry;
  readonly #paging: EntryPaging;
  readonly #denials: Counter;
  readonly #log: SyncLog;
  readonly #skippedSteps: Pick<Counter, 'inc'>;
  /**
   * Encrypted appends of one document queue in the order they arrived, whichever socket sent
   * them: checking one may take longer than the next (store lookups), and a device's envelope
   * committed behind a later one of its stream is refused as a fork by its other devices — an
   * append still being checked for a socket that closed must not pass the one its client sent
   * again on the next socket.
   */
  readonly #appendOrder = new KeyedMutex();

  constructor(options: DocumentSyncOptions) {
    this.#skippedSteps = options.skippedSteps ?? { inc: () => undefined };
    this.#hub = options.hub;
    this.#registry = options.registry;
    this.#paging = options.paging;
    this.#denials = options.denials;
    this.#log = options.log;
  }

  /** Sends SyncStep1 and the current awareness states: the start of a plaintext sync. */
  async greetPlaintext(sub: Subscription): Promise<void> {
    this.#greet(sub, await this.#read(sub, stateVectorOf));
  }

  /**
   * {@link greetPlaintext} in the caller's turn, when the document is held ready (or the
   * subscription poses, and sees an empty one); false, having sent nothing, when it is not.
   */
  greetPlaintextNow(sub: Subscription): boolean {
    if (sub.posing) {
      this.#greet(sub, EMPTY_STATE_VECTOR);
      return true;
    }
    const doc = this.#hub.readyDoc(sub.name);
    if (doc === null) return false;
    this.#greet(sub, stateVectorOf(doc));
    return true;
  }

  #greet(sub: Subscription, stateVector: Uint8Array): void {
    sub.push({ type: 'sync-step1', stateVector });
    this.#sendAwareness(sub);
  }

  /** Sends the awareness states `sub` may see, if any. */
  #sendAwareness(sub: Subscription): void {
    const states = this.#registry.awarenessStates(sub);
    if (states) sub.push({ type: 'awareness', update: states });
  }

  /** Answers a SyncStep1 once `current` (a check against the store) has settled and the document is read. */
  async #answerStep1(
    sub: Subscription,
    current: Promise<void> | null,
    stateVector: Uint8Array,
  ): Promise<void> {
    if (current !== null) await current;
    const update = await this.#read(sub, (doc) => stepTwo(doc, stateVector));
    sub.push({ type: 'sync-step2', update });
  }

  /**
   * Handles a y-protocols message of an active plaintext (or, for awareness, any) subscription:
   * in the caller's turn where nothing needs waiting for (a SyncStep1 on a document held ready
   * with the delivery lease, a fresh client's empty SyncStep2, awareness), else a promise.
   */
  handleYProtocols(sub: Subscription, message: YProtocolsMessage): void | Promise<void> {
    switch (message.type) {
      case 'sync-step1': {
        // A client that has not read what it was sent gets no new copy of the document on top:
        // encoding it would cost the event loop and the memory the bound exists to protect. It
        // asks again (SyncStep1) when it resyncs or reconnects.
        if (sub.session.congested) {
          this.#skippedSteps.inc();
          return;
        }
        // Without the delivery lease, the access is decided again against the store first.
        const current = this.#registry.current(sub);
        const doc = current === null && !sub.posing ? this.#hub.readyDoc(sub.name) : null;
        if (doc === null) return this.#answerStep1(sub, current, message.stateVector);
        sub.push({ type: 'sync-step2', update: stepTwo(doc, message.stateVector) });
        return;
      }
      case 'sync-step2':
      case 'sync-update':
        return this.write(sub, message.update, 0);
      case 'awareness':
        sub.session.holdAwareness(sub.name, message.update.byteLength);
        this.#registry.receiveAwareness(sub, message.update);
        return;
      case 'query-awareness': {
        const current = this.#registry.current(sub);
        if (current !== null) return current.then(() => this.#sendAwareness(sub));
        this.#sendAwareness(sub);
        return;
      }
      case 'permission-denied':
        return; // only the relay denies; a client's auth message means nothing here
    }
  }

  /**
   * A plaintext Yjs update from a client: `ref` > 0 for a tracked update (acked after the
   * commit, or answered with an error), 0 for a y-protocols step2/update (not acknowledged).
   */
  write(sub: Subscription, update: Uint8Array, ref: number): void | Promise<void> {
    try {
      validateUpdate(update);
    } catch (error) {
      if (ref === 0) throw error; // a malformed untracked update is a malformed frame: close 4400
      sub.answer({ type: 'error', ref, kind: 'InvalidMessage', message: 'malformed Yjs update' });
      return;
    }
    // Every stock client that connects with an empty document answers SyncStep1 with the empty
    // update: untracked, there is nothing to write and nothing to answer, so it skips the
    // document's lane (a read to check it, then a no-op write) that would cost each connection.
    if (ref === 0 && sub.state.phase === 'active' && isEmptyUpdate(update)) return;
    return this.#writeValid(sub, update, ref);
  }

  /** {@link write} of a valid update that may change the document. */
  async #writeValid(sub: Subscription, update: Uint8Array, ref: number): Promise<void> {
    const state = sub.state;
    // An update that brings nothing new (a stock client answering SyncStep1 with an empty
    // SyncStep2) needs no write access and must not create the object: the hub answers it like
    // any write that changed nothing. Checked only until the subscription's writes are authorised.
    const needsNothing =
      state.phase === 'active' &&
      state.write.status !== 'authorized' &&
      !(await this.#carriesNews(sub, update));
    if (needsNothing && sub.posing) {
      // Nothing to write, and nothing of the hidden document to touch: what an absent one answers.
      if (ref > 0) sub.answer({ type: 'ack', ref, seq: 0 });
      return;
    }
    // A live edit of a subscription whose writes are authorised is decided, applied and
    // broadcast in this turn: no promise between the frame and its readers' sockets.
    const verdict = needsNothing
      ? { ok: true as const }
      : (this.#registry.authorizedWrite(sub) ?? (await this.#registry.authorizeWrite(sub)));
    if (!verdict.ok) {
      if (ref === 0 && sub.active && undecided(verdict.kind)) {
        // The store or the lock could not answer, which says nothing of the caller's access. A
        // stock client takes permission-denied as final and never sends this update again (the
        // chaos soak caught one holding seven such edits, PostgreSQL stopped); closing makes it
        // reconnect and re-sync, which sends them, as after a failed commit below.
        sub.session.close(4503, 'the relay could not authorise an update');
        return;
      }
      this.#denials.inc();
      // Ended meanwhile (a posing subscription's first write): answered like any frame about a
      // document not subscribed to.
      if (ref > 0 || !sub.active)
        sub.answer({ type: 'error', ref, kind: verdict.kind, message: verdict.reason });
      else if (await this.#carriesNews(sub, update)) {
        sub.answer({ type: 'permission-denied', reason: verdict.reason });
      }
      return;
    }
    let pending: PendingWrite;
    try {
      const origin = originOf(sub);
      pending =
        this.#hub.enqueueHeldUpdate(sub.name, update, origin) ??
        (await this.#hub.enqueueUpdate(sub.name, update, origin));
    } catch (error) {
      if (ref === 0) throw error;
      this.#answerError(sub, ref, error);
      return;
    }
    pending.committed.then(
      ({ seq }) => {
        if (ref > 0) sub.answer({ type: 'ack', ref, seq });
      },
      (error: unknown) => {
        if (ref > 0) return this.#answerError(sub, ref, error);
        // The client believes the update was delivered. Closing makes it reconnect and re-sync,
        // which sends the update again.
        sub.session.close(4503, 'the relay could not store an update');
      },
    );
  }

  /** An encrypted-channel request of an active encrypted subscription. */
  async handleEncrypted(sub: Subscription, message: EncryptedRequest): Promise<void> {
    if (message.type === 'enc-fetch') {
      const current = this.#registry.current(sub);
      if (current !== null) await current;
      await this.sendEntries(sub, message.sinceSeq);
      return;
    }
    if (message.type === 'enc-append') {
      // The place in the document's queue is taken now, synchronously: arrival order.
      const pending = await this.#appendOrder.run(sub.name, () => this.#enqueueAppend(sub, message));
      pending?.committed.then(
        ({ seq }) => sub.answer({ type: 'ack', ref: message.ref, seq }),
        (error: unknown) => this.#answerError(sub, message.ref, error),
      );
      return;
    }
    if (!(await this.#authorizeWrite(sub, message.ref))) return;
    try {
      const context = { caller: sub.session.caller, origin: originOf(sub) };
      await this.#hub.snapshotEncrypted(sub.name, message.throughSeq, message.snapshot, context);
      sub.answer({ type: 'ack', ref: message.ref, seq: message.throughSeq });
    } catch (error) {
      this.#answerError(sub, message.ref, error);
    }
  }

  /** Authorises and queues one encrypted append; undefined when it was refused (and answered). */
  async #enqueueAppend(
    sub: Subscription,
    message: MessageOfType<'enc-append'>,
  ): Promise<PendingWrite | undefined> {
    if (!(await this.#authorizeWrite(sub, message.ref))) return undefined;
    try {
      const context = { caller: sub.session.caller, origin: originOf(sub) };
      return await this.#hub.enqueueEncrypted(sub.name, message.envelope, context);
    } catch (error) {
      this.#answerError(sub, message.ref, error);
      return undefined;
    }
  }

  /** Whether `sub` may write now; a refusal is answered to request `ref` and counted. */
  async #authorizeWrite(sub: Subscription, ref: number): Promise<boolean> {
    const verdict = await this.#registry.authorizeWrite(sub);
    if (verdict.ok) return true;
    this.#denials.inc();
    sub.answer({ type: 'error', ref, kind: verdict.kind, message: verdict.reason });
    return false;
  }

  /**
   * The start of an encrypted sync: the log after `sinceSeq`, then the live entries committed
   * meanwhile (held back so the client sees the log in order; those the fetch carried are not
   * sent twice).
   */
  async startEncrypted(sub: Subscription, sinceSeq: number): Promise<void> {
    const sent = await this.sendEntries(sub, sinceSeq);
    const buffered = sub.liveBuffer ?? [];
    sub.liveBuffer = null;
    for (const entry of buffered) {
      if (entry.seq > sent) sub.push({ type: 'enc-entries', headSeq: entry.seq, entries: [entry] });
    }
  }

  /** Sends the encrypted log after `sinceSeq` in pages; returns the last seq sent (or `sinceSeq`). */
  async sendEntries(sub: Subscription, sinceSeq: number): Promise<number> {
    let since = sinceSeq;
    if (sub.posing) {
      // What an absent document's log looks like.
      sub.push({ type: 'enc-entries', headSeq: 0, entries: [] });
      return since;
    }
    for (let first = true; ; first = false) {
      const page = await this.#hub.fetchEncrypted(sub.name, since, {
        maxBytes: this.#paging.maxPageBytes,
        maxEntries: this.#paging.maxEntriesPerPage,
      });
      if (!sub.active) return since;
      const last = page.entries.at(-1)?.seq;
      if (page.entries.length > 0 || first) {
        sub.push({ type: 'enc-entries', headSeq: page.headSeq, entries: page.entries });
      }
      if (last === undefined) return since;
      since = last;
      if (last >= page.headSeq) return since;
    }
  }

  /** Reads the document as `sub` may see it: a posing subscription sees an empty one, never the hidden object. */
  #read<T>(sub: Subscription, fn: (doc: Y.Doc) => T): Promise<T> {
    if (!sub.posing) return this.#hub.read(sub.name, fn);
    const empty = new Y.Doc();
    try {
      return Promise.resolve(fn(empty));
    } catch (error) {
      return Promise.reject(error);
    } finally {
      empty.destroy();
    }
  }

  /** Whether a refused update would have changed the document (only then is the refusal worth telling). */
  async #carriesNews(sub: Subscription, update: Uint8Array): Promise<boolean> {
    try {
      return await this.#read(sub, (doc) => !Y.snapshotContainsUpdate(Y.snapshot(doc), update));
    } catch {
      return true;
    }
  }

  #answerError(sub: Subscription, ref: number, error: unknown): void {
    if (isSyncError(error)) {
      sub.answer({ type: 'error', ref, kind: error.kind, message: error.message });
      return;
    }
    this.#log('error', 'a sync request failed', sub.session.context({ doc: sub.name, ref, error }));
    sub.answer({ type: 'error', ref, kind: 'Internal', message: 'internal error' });
  }
}

/**
 * The state vector of a document with nothing in it, and its whole state as an update: what
 * Yjs encodes for any empty document, shared rather than encoded again for each socket (most
 * sockets of a new document greet an empty one, and a fresh client asks with an empty vector).
 * Never written to: frames are encoded from them, not into them.
 */
export const EMPTY_STATE_VECTOR = new Uint8Array([0]);
const EMPTY_UPDATE = new Uint8Array([0, 0]);

/** Whether Yjs would encode `doc` as empty: no structs, nothing pending. */
function isEmptyDoc(doc: Y.Doc): boolean {
  const store = doc.store;
  return store.clients.size === 0 && store.pendingStructs === null && store.pendingDs === null;
}

function stateVectorOf(doc: Y.Doc): Uint8Array {
  return isEmptyDoc(doc) ? EMPTY_STATE_VECTOR : Y.encodeStateVector(doc);
}

/** The SyncStep2 answering a SyncStep1 with `stateVector`; a malformed vector is an invalid message. */
function stepTwo(doc: Y.Doc, stateVector: Uint8Array): Uint8Array {
  try {
    return updateSince(doc, stateVector);
  } catch (error) {
    throw new SyncError('InvalidMessage', 'malformed state vector', { cause: error });
  }
}

/** What `doc` holds beyond `stateVector` (SyncStep2); throws on a malformed vector. */
function updateSince(doc: Y.Doc, stateVector: Uint8Array): Uint8Array {
  // Only the one-byte empty vector skips Yjs: any other is decoded, so a malformed one still throws.
  if (stateVector.length === 1 && stateVector[0] === 0 && isEmptyDoc(doc)) return EMPTY_UPDATE;
  return Y.encodeStateAsUpdate(doc, stateVector);
}

/** The origin of a subscription's writes: its socket, so its own echo is not sent back. */
export function originOf(sub: Subscription): ChangeOrigin {
  return { source: 'socket', session: sub.session.id };
}

/** Whether a refused write's kind says the relay could not decide it, rather than that it is not allowed. */
function undecided(kind: ErrorKind): boolean {
  return kind === 'Unavailable' || kind === 'Internal';
}
