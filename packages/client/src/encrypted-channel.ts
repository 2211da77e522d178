import { type Message, SyncError } from '@scopesync/core';
import * as Y from 'yjs';
import { asSyncError } from './as-sync-error.ts';
import { openAwarenessUpdate, sealAwarenessUpdate } from './awareness-seal.ts';
import { Deferred } from './deferred.ts';
import type { DocChannel, DocChannelHost, OutboxEntry, Refusal } from './doc-channel.ts';
import type { DocFlags } from './doc-flags.ts';
import { DOC_ORIGINS } from './doc-origin.ts';
import type { DocMeta } from './local-doc-log.ts';
import { SerialQueue } from './serial-queue.ts';
import { TrackedSends } from './tracked-sends.ts';

/** Consecutive reseals after key rotations before the edits are given up as refused. */
const MAX_RESEALS = 2;

/**
 * How long a local edit waits for more before it is sealed and sent, ms: keystrokes typed within
 * it travel as one envelope. Short enough not to be felt as lag, long enough to cover a burst.
 */
const BATCH_WINDOW_MS = 20;

/**
 * The end-to-end encrypted channel: the relay keeps an append-only log of sealed envelopes it
 * cannot read. A subscription fetches the log since the last entry this client has; each local
 * edit is sealed when stored (nothing in clear at rest) and sealed again, next in this device's
 * stream, when sent once the relay is ready for our keys. Edits are batched:
 * they wait a short window ({@link BATCH_WINDOW_MS}), and while an append is in flight they wait
 * for its ack; then everything waiting goes merged (`Y.mergeUpdates`) into one envelope, sealed
 * and signed again — fewer envelopes for the relay to verify and store, and less keystroke
 * timing for it to see. The client compacts the
 * relay's log with snapshots; an append refused as KeyRotated is sealed again under the
 * current key.
 */
export class EncryptedChannel implements DocChannel {
  readonly mode = 'encrypted';
  readonly #host: DocChannelHost;
  readonly #sends = new TrackedSends();
  /** Envelopes open asynchronously: this keeps received messages in order. */
  readonly #incoming = new SerialQueue();
  /** The relay's highest seq this client has read (or skipped as unreadable). */
  #serverSeq = 0;
  /** The fetch since the subscription began has not reached the relay's head yet. */
  #catchingUp = false;
  /** `prepareSend` succeeded on the current socket: envelopes may go. */
  #prepared = false;
  #prepareTimer: ReturnType<typeof setTimeout> | undefined;
  #prepareAttempts = 0;
  /** An entry could not be opened yet (its key unreachable): read on from it later. */
  #refetchTimer: ReturnType<typeof setTimeout> | undefined;
  #refetchAttempts = 0;
  /** Local edits being sealed again under a rotated key. */
  #resealing: Promise<void> | undefined;
  /** Reseals since the last acknowledged edit. */
  #reseals = 0;
  /** Waiters of {@link replaceBySnapshot}, by request ref. */
  readonly #snapshotWaiters = new Map<number, Deferred<void>>();
  /** Edits were held back while an append was in flight: send them when it is answered. */
  #held = false;
  /** The batching window is open: edits wait for it to close. */
  #windowTimer: ReturnType<typeof setTimeout> | undefined;
  /** The window closed: the next send goes out now. */
  #windowClosed = false;
  /** Changes whenever what was sent is forgotten: a batch sealed meanwhile must not go. */
  #generation = 0;

  constructor(host: DocChannelHost) {
    this.#host = host;
  }

  run(task: () => Promise<void>): Promise<void> {
    return this.#incoming.run(task);
  }

  loaded(meta: Readonly<DocMeta>): void {
    this.#serverSeq = meta.lastServerSeq;
  }

  subscribe(flags: DocFlags): void {
    const { ctx } = this.#host;
    ctx.send({
      type: 'subscribe',
      mode: 'encrypted',
      sinceSeq: this.#serverSeq,
      read: flags.read,
      write: flags.write,
    });
    this.#catchingUp = true;
    ctx.send({ type: 'enc-fetch', sinceSeq: this.#serverSeq });
  }

  async granted(access: 'read' | 'read-write'): Promise<void> {
    if (access === 'read-write') await this.#prepareAndFlush();
  }

  send(entries: readonly OutboxEntry[]): void {
    if (!this.#host.writable() || !this.#prepared) return;
    const fresh = entries.filter((e) => !this.#sends.isSent(e.seq));
    if (fresh.length === 0) return;
    if (this.#sends.hasUpdate()) {
      // Nagle's rule: the ack of the append in flight sends these, merged into one envelope.
      this.#held = true;
      return;
    }
    if (!this.#windowClosed) {
      // Wait a moment for the rest of the burst; the window's end sends whatever is pending.
      this.#windowTimer ??= setTimeout(() => {
        this.#windowTimer = undefined;
        this.#flushNow();
      }, BATCH_WINDOW_MS);
      return;
    }
    const batch: OutboxEntry[] = [];
    let bytes = 0;
    for (const e of fresh) {
      if (batch.length > 0 && bytes + e.payload.length > this.#host.ctx.maxSendBytes) {
        this.#held = true; // the rest goes after this one's ack
        break;
      }
      batch.push(e);
      bytes += e.payload.length;
    }
    const { ctx } = this.#host;
    const ref = ctx.nextRef();
    const flight = { kind: 'update', seqs: batch.map((e) => e.seq) } as const;
    // Sealed again now, even a single edit: the envelope stored with it took its counter when
    // the edit was made, and a later one of this stream (a batch, an append whose ack was lost)
    // may be on the relay already. Stored behind it, every other device refuses it as a fork.
    // A fresh counter keeps what this device sends in stream order; resending an edit the relay
    // has is harmless (a Yjs update applies once).
    // Claimed now, so nothing else sends these entries while they are being sealed together.
    this.#sends.track(ref, flight);
    const generation = this.#generation;
    void this.#sealBatch(batch).then(
      (envelope) => {
        if (generation !== this.#generation) {
          // What was sent was forgotten meanwhile (compaction, a new socket): release the claim
          // and let a flush send whatever is still pending.
          this.#sends.take(ref);
          this.#held = true;
          this.#sendHeld();
          return;
        }
        if (!ctx.send({ type: 'enc-append', ref, envelope })) this.#sends.take(ref);
      },
      (error: unknown) => {
        this.#sends.take(ref);
        this.#host.emit(
          'error',
          asSyncError(error, 'Internal', `sealing edits of ${this.#host.name} failed`),
        );
      },
    );
  }

  /**
   * One envelope holding every edit of `batch`, next in this device's stream: opened from the
   * local log, merged, sealed again.
   */
  async #sealBatch(batch: readonly OutboxEntry[]): Promise<Uint8Array> {
    const { ctx } = this.#host;
    const updates = await Promise.all(batch.map((e) => ctx.openLocal(e.payload)));
    return ctx.sealUpdate(updates.length === 1 ? (updates[0] as Uint8Array) : Y.mergeUpdates(updates));
  }

  /** Sends the edits held back while an append was in flight. */
  #sendHeld(): void {
    if (!this.#held) return;
    this.#held = false;
    this.#flushNow();
  }

  /** Sends what is pending without waiting for a window: the edits have waited already. */
  #flushNow(): void {
    this.#windowClosed = true;
    void this.#host.flush().finally(() => {
      this.#windowClosed = false;
    });
  }

  /** Our awareness states sealed under the doc key: the relay relays cursors and names it cannot read. */
  sealAwareness(update: Uint8Array): Promise<Uint8Array> {
    return sealAwarenessUpdate(update, (plaintext) => this.#host.ctx.sealUpdate(plaintext));
  }

  /** Members' awareness states opened (and their authors checked); unsealed or forged states are dropped. */
  async openAwareness(update: Uint8Array): Promise<Uint8Array | undefined> {
    const opened = await openAwarenessUpdate(update, (envelope) => this.#host.ctx.open(envelope));
    if (opened.refused > 0) {
      this.#host.emit(
        'error',
        new SyncError(
          'Forbidden',
          `dropped ${opened.refused} awareness state(s) of ${this.#host.name} that were not sealed by a member`,
        ),
      );
    }
    return opened.update;
  }

  async receive(message: Message): Promise<boolean> {
    if (message.type !== 'enc-entries') return false;
    await this.#onEntries(message.headSeq, message.entries);
    return true;
  }

  async ack(ref: number, serverSeq: number): Promise<void> {
    const flight = this.#sends.take(ref);
    if (!flight) return;
    const { log, ctx } = this.#host;
    if (flight.kind === 'snapshot') {
      await log.updateMeta({ relayEntriesSinceSnapshot: 0 });
      this.#settleSnapshot(ref);
      return;
    }
    this.#reseals = 0;
    await log.markAcked(flight.seqs, serverSeq);
    if (flight.seqs.length > 1 && serverSeq > 0) {
      // One envelope carried several edits: count them all toward the next relay snapshot, so
      // batching keeps the relay's log as short (in bytes) as one envelope per edit did.
      const since = (log.meta.relayEntriesSinceSnapshot ?? 0) + flight.seqs.length - 1;
      await log.updateMeta({ relayEntriesSinceSnapshot: since });
    }
    if (serverSeq > this.#serverSeq) {
      // Our own entry is part of the relay's log too (it is not echoed back to us). Entries of
      // others committed before it reached us first: the relay pushes in commit order.
      this.#serverSeq = serverSeq;
      await log.updateMeta({ lastServerSeq: serverSeq });
    }
    this.#host.emit('pending', log.pendingCount);
    ctx.afterAck().catch((error) => this.#host.fail(error, 'Unavailable'));
    this.#sendHeld();
    void this.#maybeUploadSnapshot();
  }

  async refused(ref: number, error: SyncError): Promise<Refusal> {
    const flight = this.#sends.take(ref);
    if (!flight) return 'unknown';
    if (flight.kind === 'snapshot') {
      // A snapshot the relay would not take costs nothing: the log stays as it is.
      await this.#host.log.updateMeta({ relayEntriesSinceSnapshot: 0 });
      this.#settleSnapshot(ref, error);
      return 'settled';
    }
    if (error.kind === 'KeyRotated' && this.#reseals < MAX_RESEALS) {
      // Sealed under a key the owner has since rotated: seal the same edits again under the
      // new key instead of dropping them. (Counted: a rotation that a new key does not cure —
      // the key never arrives — ends as a refusal.)
      if (!this.#resealing) this.#reseals++;
      await this.#resealAfterRotation(error);
      return 'settled';
    }
    this.#sendHeld();
    return 'refused';
  }

  forget(): void {
    this.#generation++;
    this.#sends.clear();
  }

  merged(through: number): void {
    this.#generation++;
    this.#sends.forgetThrough(through);
  }

  rebuilt(): void {
    // The log is read by seq: a rebuilt doc holds every entry through #serverSeq already.
  }

  detach(): void {
    this.#generation++;
    this.#held = false;
    this.#prepared = false;
    this.#catchingUp = false;
    this.#clearTimers();
    for (const ref of [...this.#snapshotWaiters.keys()]) {
      this.#settleSnapshot(
        ref,
        new SyncError(
          'Unavailable',
          `the connection closed before the snapshot of ${this.#host.name} was stored`,
        ),
      );
    }
    this.#sends.clear();
  }

  remaking(): boolean {
    return this.#resealing !== undefined;
  }

  /**
   * Replaces the relay's log by one snapshot of the whole doc, sealed under the current key
   * (after a key rotation, so the relay raises the doc's epoch floor and nothing under the old
   * key remains). The caller waits until the doc is synced and every local edit acknowledged;
   * resolves once the relay stored the snapshot.
   */
  async replaceBySnapshot(): Promise<void> {
    const host = this.#host;
    if (!host.writable()) {
      throw new SyncError('Unavailable', `${host.name} is not writable on the relay right now`);
    }
    const snapshot = await host.ctx.sealSnapshot(Y.encodeStateAsUpdate(host.doc()));
    const ref = host.ctx.nextRef();
    const waiter = new Deferred<void>();
    // Through the newest entry we hold; an empty log has nothing to replace: append it instead.
    const sent =
      this.#serverSeq > 0
        ? host.ctx.send({ type: 'enc-snapshot', ref, throughSeq: this.#serverSeq, snapshot })
        : host.ctx.send({ type: 'enc-append', ref, envelope: snapshot });
    if (!sent) {
      throw new SyncError(
        'Unavailable',
        `the connection closed before the snapshot of ${host.name} was sent`,
      );
    }
    this.#sends.track(ref, { kind: 'snapshot', seqs: [] });
    this.#snapshotWaiters.set(ref, waiter);
    await waiter.promise;
  }

  /** Readies the relay for our envelopes, then sends the outbox; retries while the socket lasts. */
  async #prepareAndFlush(): Promise<void> {
    const host = this.#host;
    this.#clearTimers();
    if (!host.writable()) return;
    try {
      await host.ctx.prepareSend();
    } catch (error) {
      host.emit('error', asSyncError(error, 'Unavailable', `preparing ${host.name} for sending failed`));
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
    if (!host.writable()) return;
    this.#prepared = true;
    await host.flush();
  }

  #clearTimers(): void {
    if (this.#windowTimer !== undefined) clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    if (this.#prepareTimer !== undefined) clearTimeout(this.#prepareTimer);
    this.#prepareTimer = undefined;
    if (this.#refetchTimer !== undefined) clearTimeout(this.#refetchTimer);
    this.#refetchTimer = undefined;
  }

  /** Reads the log on from the entry that could not be opened yet, later. */
  #scheduleRefetch(): void {
    if (this.#refetchTimer !== undefined || !this.#host.subscribed()) return;
    const delay = Math.min(30_000, 1000 * 2 ** this.#refetchAttempts++);
    this.#refetchTimer = setTimeout(() => {
      this.#refetchTimer = undefined;
      if (this.#host.subscribed()) this.#host.ctx.send({ type: 'enc-fetch', sinceSeq: this.#serverSeq });
    }, delay);
  }

  async #onEntries(
    headSeq: number,
    entries: readonly { seq: number; envelope: Uint8Array }[],
  ): Promise<void> {
    // Waiting to read on from an entry we could not open yet: later entries come again with
    // the re-fetch, in order.
    if (this.#refetchTimer !== undefined) return;
    const host = this.#host;
    for (const entry of entries) {
      if (entry.seq <= this.#serverSeq) continue;
      let update: Uint8Array;
      try {
        update = await host.ctx.open(entry.envelope);
      } catch (error) {
        const failure = asSyncError(
          error,
          'InvalidMessage',
          `entry ${entry.seq} of ${host.name} did not open`,
        );
        host.emit(
          'error',
          new SyncError(failure.kind, `refused entry ${entry.seq} of ${host.name}: ${failure.message}`, {
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
        Y.applyUpdate(host.doc(), update, DOC_ORIGINS.relay);
      } catch (error) {
        // Authentic but not a Yjs update (a member's buggy client): refused like a bad envelope.
        host.emit(
          'error',
          new SyncError('InvalidMessage', `refused entry ${entry.seq} of ${host.name}: not a Yjs update`, {
            cause: error,
          }),
        );
        this.#serverSeq = entry.seq;
        continue;
      }
      this.#serverSeq = entry.seq;
      // Stored as received: ciphertext at rest.
      await host.log.appendRemote(entry.envelope, entry.seq);
      await host.log.updateMeta({
        relayEntriesSinceSnapshot: (host.log.meta.relayEntriesSinceSnapshot ?? 0) + 1,
      });
      host.emit('remote-update', { update });
    }
    this.#refetchAttempts = 0;
    host.compact();
    if (this.#catchingUp && this.#serverSeq >= headSeq) {
      this.#catchingUp = false;
      host.synced();
      // Members compare what they have read (signed heads): a relay hiding envelopes from one of
      // them shows. A failure here is reported, never fatal to syncing.
      host.ctx
        .afterSynced()
        .catch((error) =>
          host.emit('error', asSyncError(error, 'Unavailable', `comparing heads of ${host.name} failed`)),
        );
    }
    void this.#maybeUploadSnapshot();
  }

  /**
   * An append was refused as sealed under an old epoch: fetch the rotated key, rebuild the doc
   * from what the relay confirmed, and make the unconfirmed edits again (sealed under the new
   * key, stored and sent as new local edits).
   */
  #resealAfterRotation(cause: SyncError): Promise<void> {
    const host = this.#host;
    this.#resealing ??= (async () => {
      try {
        await host.ctx.refreshKeys();
        await host.stored().catch(() => undefined);
        const pending = await host.log.loadPending();
        const updates = await Promise.all(pending.map((e) => host.ctx.openLocal(e.payload)));
        await host.reset(true);
        if (updates.length > 0 && !host.closed()) {
          // A reseal origin is not a relay or store one: the handle stores and sends them like fresh edits.
          Y.applyUpdate(host.doc(), Y.mergeUpdates(updates), DOC_ORIGINS.reseal);
          await host.stored();
        }
      } catch (error) {
        host.emit('error', cause);
        host.emit('error', asSyncError(error, 'Internal', `sealing ${host.name} again failed`));
        await host.reset(true);
      } finally {
        this.#resealing = undefined;
        // The reset emptied the outbox while re-sealing; tell whenAcked what is really pending now.
        host.emit('pending', host.log.pendingCount);
      }
    })();
    return this.#resealing;
  }

  /**
   * Encrypted docs are compacted by their clients: once the relay holds many entries past the
   * last snapshot and nothing of ours is pending, upload the whole state as a snapshot.
   */
  async #maybeUploadSnapshot(): Promise<void> {
    const host = this.#host;
    // Not before prepareSend on this socket: the snapshot may be sealed under a key the relay
    // does not hold yet, and it replaces the log other devices read.
    if (!host.writable() || this.#catchingUp || !this.#prepared) return;
    if ((host.log.meta.relayEntriesSinceSnapshot ?? 0) < host.ctx.compactAfter || host.log.pendingCount > 0)
      return;
    if (this.#sends.hasSnapshot()) return;
    const throughSeq = this.#serverSeq;
    if (throughSeq === 0) return;
    const snapshot = await host.ctx.sealSnapshot(Y.encodeStateAsUpdate(host.doc()));
    const ref = host.ctx.nextRef();
    if (host.ctx.send({ type: 'enc-snapshot', ref, throughSeq, snapshot })) {
      this.#sends.track(ref, { kind: 'snapshot', seqs: [] });
    }
  }

  #settleSnapshot(ref: number, error?: SyncError): void {
    const waiter = this.#snapshotWaiters.get(ref);
    this.#snapshotWaiters.delete(ref);
    if (error) waiter?.reject(error);
    else waiter?.resolve();
  }
}
