// A DocHandle's outbox on its way to the relay: sending it again, compacting it, and waiting until it is acknowledged or drained.
import { SyncError } from '@scopesync/core';
import { asSyncError } from './as-sync-error.ts';
import type { DocChannel } from './doc-channel.ts';
import type { DocHandleEvents } from './doc-handle-events.ts';
import type { DroppedEdits } from './dropped-edits.ts';
import type { CompactResult, LocalDocLog } from './local-doc-log.ts';
import type { ResendSchedule } from './resend-schedule.ts';
import type { Unsubscribe } from './typed-events.ts';

/** How long a released handle keeps syncing to get its last edits acknowledged, milliseconds. */
const DRAIN_TIMEOUT_MS = 30_000;

/** What a {@link DocOutbox} may use of its {@link DocHandle}. */
export interface DocOutboxHost {
  readonly name: string;
  readonly log: LocalDocLog;
  readonly channel: DocChannel;
  readonly resends: ResendSchedule;
  /** Edits dropped for good, so acked() can tell a refusal from an ack. */
  readonly dropped: DroppedEdits;
  /** Compact the local log after this many entries. */
  readonly compactAfter: number;
  /** Emits one of the handle's events. */
  emit<K extends keyof DocHandleEvents>(event: K, value: DocHandleEvents[K]): void;
  /** Listens to one of the handle's events. */
  on<K extends keyof DocHandleEvents>(event: K, listener: (value: DocHandleEvents[K]) => void): Unsubscribe;
  /** Resolves once every local edit made so far is durable in the local store. */
  whenStored(): Promise<void>;
}

/** A doc's outbox on its way to the relay: sends it (again), compacts it, and waits for it to empty. */
export class DocOutbox {
  readonly #host: DocOutboxHost;
  #flushing = false;
  #flushAgain = false;

  constructor(host: DocOutboxHost) {
    this.#host = host;
  }

  /** Sends the whole outbox again (after the relay granted read-write on a fresh socket). */
  async flush(): Promise<void> {
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    this.#flushing = true;
    try {
      do {
        this.#flushAgain = false;
        const pending = await this.#host.log.loadPending();
        this.#host.channel.send(pending);
        if (pending.length > 0) this.#host.resends.sent();
      } while (this.#flushAgain);
    } finally {
      this.#flushing = false;
    }
  }

  /** Runs `compaction` (default: when the log passed its size threshold) and re-sends what it merged. */
  async compact(compaction?: () => Promise<CompactResult>): Promise<void> {
    if (compaction === undefined && this.#host.log.size <= this.#host.compactAfter) return;
    try {
      const result = await (compaction ?? (() => this.#host.log.compactIfNeeded()))();
      if (result.pendingMergedThrough !== undefined) {
        // The merged pending entry replaces entries that may be in flight: forget them and
        // send the merged entry instead (acks for the old refs are then ignored).
        this.#host.channel.merged(result.pendingMergedThrough);
        await this.flush();
      }
    } catch (error) {
      this.#host.emit('error', asSyncError(error, 'Internal', `compacting ${this.#host.name} failed`));
    }
  }

  /** Resolves once the relay acknowledged every local edit; see {@link DocHandle.whenAcked}. */
  acked(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = (): boolean => {
        if (this.#host.log.pendingCount === 0 && !this.#host.channel.remaking()) {
          stop();
          closed();
          // An outbox emptied by a refusal (the edits were dropped) is not an ack: the next
          // whenAcked to settle reports it, even when the refusal came before the call.
          const dropped = this.#host.dropped.takeUnreported();
          if (dropped) reject(dropped);
          else resolve();
          return true;
        }
        return false;
      };
      const stop = this.#host.on('pending', () => check());
      const closed = this.#host.on('closed', ({ reason }) => {
        stop();
        closed();
        reject(
          new SyncError('Unavailable', `the handle closed before its edits were acknowledged: ${reason}`),
        );
      });
      // A local edit that could not be stored is no reason to wait forever: it was dropped
      // (counted as a refusal above), and the check reports it.
      void this.#host.whenStored().then(check, check);
    });
  }

  /**
   * Resolves once the outbox is empty, the handle closed, DRAIN_TIMEOUT_MS passed, or the socket
   * closed: `onDetach` gets the function that ends the wait then.
   */
  drained(onDetach: (done: () => void) => void): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, DRAIN_TIMEOUT_MS);
      const stopPending = this.#host.on('pending', (n) => {
        if (n === 0) done();
      });
      const stopClosed = this.#host.on('closed', done);
      onDetach(done);
      function done(): void {
        clearTimeout(timer);
        stopPending();
        stopClosed();
        resolve();
      }
      if (this.#host.log.pendingCount === 0) done();
    });
  }
}
