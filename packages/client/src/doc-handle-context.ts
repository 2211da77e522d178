import type { Address, Caller, Message } from '@scopesync/core';
import type { Awareness } from 'y-protocols/awareness';
import type { LocalDocLog } from './local-doc-log.ts';

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
  /** The doc caught up with the relay (encrypted docs): compare signed heads with the other members. */
  afterSynced(): Promise<void>;
  /** Fetches document keys the relay holds for us (a rotation happened). */
  refreshKeys(): Promise<void>;
  /** Seals a whole-state snapshot (encrypted docs only). */
  sealSnapshot(state: Uint8Array): Promise<Uint8Array>;
  /** Seals an incremental update (encrypted docs only): several local edits merged into one envelope. */
  sealUpdate(update: Uint8Array): Promise<Uint8Array>;
  /** The handle's awareness was created (first use): the other tabs share it (tab-channel.ts). */
  onAwareness?(awareness: Awareness): void;
  /** Called when the last reference is released or the handle is revoked. */
  onClosed(): void;
  /** Compact the local log after this many entries; upload a relay snapshot after this many relay entries. */
  readonly compactAfter: number;
  /** Largest tracked update the handle sends in one frame (bytes); larger outboxes go in several. */
  readonly maxSendBytes: number;
}
