import type { Message, SyncError } from '@scopesync/core';
import * as Y from 'yjs';
import { asSyncError } from './as-sync-error.ts';
import type { DocChannel, DocChannelHost, OutboxEntry, Refusal } from './doc-channel.ts';
import type { DocFlags } from './doc-flags.ts';
import { DOC_ORIGINS } from './doc-origin.ts';
import { TrackedSends } from './tracked-sends.ts';

/**
 * Plaintext Yjs sync (y-protocols SyncStep1/2 and updates): the relay reads and merges the
 * doc. Local edits go as tracked updates, merged into as few frames as the size limit allows,
 * and leave the outbox when the relay acks them.
 */
export class PlaintextChannel implements DocChannel {
  readonly mode = 'plaintext';
  readonly #host: DocChannelHost;
  readonly #sends = new TrackedSends();
  /** Our SyncStep1 is out and its answer (SyncStep2) has not come: not caught up yet. */
  #catchingUp = false;
  /** The relay's SyncStep1 received before we knew we may answer it (read-write). */
  #relayStateVector: Uint8Array | undefined;

  constructor(host: DocChannelHost) {
    this.#host = host;
  }

  run(task: () => Promise<void>): Promise<void> {
    // Updates apply synchronously: no queue, so a message is handled in the turn it arrived.
    return task();
  }

  loaded(): void {}

  subscribe(flags: DocFlags): void {
    const { ctx } = this.#host;
    ctx.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0, read: flags.read, write: flags.write });
    this.#catchingUp = true;
    ctx.send({ type: 'sync-step1', stateVector: Y.encodeStateVector(this.#host.doc()) });
  }

  async granted(access: 'read' | 'read-write'): Promise<void> {
    if (access === 'read') {
      // Read-only callers have nothing the relay would take: its SyncStep1 goes unanswered.
      this.#relayStateVector = undefined;
      return;
    }
    if (this.#relayStateVector) {
      this.#answerStep1(this.#relayStateVector);
      this.#relayStateVector = undefined;
    }
    await this.#host.flush();
  }

  async sealAwareness(update: Uint8Array): Promise<Uint8Array> {
    return update;
  }

  async openAwareness(update: Uint8Array): Promise<Uint8Array | undefined> {
    return update;
  }

  send(entries: readonly OutboxEntry[]): void {
    if (!this.#host.writable()) return;
    const fresh = entries.filter((e) => !this.#sends.isSent(e.seq));
    let batch: OutboxEntry[] = [];
    let bytes = 0;
    const sendBatch = (): void => {
      if (batch.length === 0) return;
      const update =
        batch.length === 1 ? (batch[0] as OutboxEntry).payload : Y.mergeUpdates(batch.map((e) => e.payload));
      const ref = this.#host.ctx.nextRef();
      if (this.#host.ctx.send({ type: 'tracked-update', ref, update })) {
        this.#sends.track(ref, { kind: 'update', seqs: batch.map((e) => e.seq) });
      }
      batch = [];
      bytes = 0;
    };
    for (const e of fresh) {
      if (bytes + e.payload.length > this.#host.ctx.maxSendBytes) sendBatch();
      batch.push(e);
      bytes += e.payload.length;
    }
    sendBatch();
  }

  async receive(message: Message): Promise<boolean> {
    switch (message.type) {
      case 'sync-step1':
        if (this.#host.writable()) this.#answerStep1(message.stateVector);
        else this.#relayStateVector = message.stateVector;
        return true;
      case 'sync-step2':
        this.#applyRemote(message.update);
        if (this.#catchingUp) {
          this.#catchingUp = false;
          this.#host.synced();
        }
        return true;
      case 'sync-update':
        this.#applyRemote(message.update);
        return true;
      default:
        return false;
    }
  }

  async ack(ref: number): Promise<void> {
    const flight = this.#sends.take(ref);
    if (!flight) return;
    const { log } = this.#host;
    await log.markAcked(flight.seqs, 0);
    this.#host.emit('pending', log.pendingCount);
  }

  async refused(ref: number, _error: SyncError): Promise<Refusal> {
    return this.#sends.take(ref) ? 'refused' : 'unknown';
  }

  forget(): void {
    this.#sends.clear();
  }

  merged(through: number): void {
    this.#sends.forgetThrough(through);
  }

  rebuilt(): void {
    if (!this.#host.subscribed()) return;
    // The rebuilt doc lacks what the relay confirmed but we had not stored: ask for it again.
    this.#catchingUp = true;
    this.#host.ctx.send({ type: 'sync-step1', stateVector: Y.encodeStateVector(this.#host.doc()) });
  }

  detach(): void {
    this.#catchingUp = false;
    this.#relayStateVector = undefined;
    this.#sends.clear();
  }

  remaking(): boolean {
    return false;
  }

  #answerStep1(stateVector: Uint8Array): void {
    this.#host.ctx.send({ type: 'sync-step2', update: Y.encodeStateAsUpdate(this.#host.doc(), stateVector) });
  }

  #applyRemote(update: Uint8Array): void {
    // y-protocols' encoding of "nothing": no structs, empty delete set.
    if (update.length <= 2 && update.every((b) => b === 0)) return;
    const host = this.#host;
    Y.applyUpdate(host.doc(), update, DOC_ORIGINS.relay);
    void host.log.appendRemote(update).then(
      () => host.compact(),
      (error) =>
        host.emit('error', asSyncError(error, 'Internal', `storing a remote update of ${host.name} failed`)),
    );
    host.emit('remote-update', { update });
  }
}
