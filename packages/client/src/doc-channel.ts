import type { ErrorKind, Message, SubscribeMode, SyncError } from '@scopesync/core';
import type * as Y from 'yjs';
import type { DocFlags } from './doc-flags.ts';
import type { DocHandleContext } from './doc-handle-context.ts';
import type { DocHandleEvents } from './doc-handle-events.ts';
import type { DocMeta, LocalDocLog } from './local-doc-log.ts';

/** A stored local edit as the outbox holds it: its local seq and payload (an update or an envelope). */
export interface OutboxEntry {
  readonly seq: number;
  readonly payload: Uint8Array;
}

/** What the handle does with a request the relay refused, as its channel judged it. */
export type Refusal =
  /** Not a request of the current socket (or forgotten): report it, nothing else. */
  | 'unknown'
  /** The channel dealt with it (a snapshot not taken, edits sealed again): nothing to report. */
  | 'settled'
  /** Edits the relay refused: report it, and drop them if it would refuse them again. */
  | 'refused';

/**
 * What a channel may use of its {@link DocHandle}: the doc, the local log, the socket and the
 * subscription's phase, and the handle's own steps (reset, flush, compaction, events).
 */
export interface DocChannelHost {
  readonly name: string;
  readonly ctx: DocHandleContext;
  readonly log: LocalDocLog;
  /** The current Y.Doc (a reset replaces it). */
  doc(): Y.Doc;
  /** True while subscribed on the current socket (answered or not). */
  subscribed(): boolean;
  /** True while the subscription is active with read-write access: local edits may go. */
  writable(): boolean;
  /** True once the handle stopped for good. */
  closed(): boolean;
  /** The doc caught up with the relay. */
  synced(): void;
  /** Emits one of the handle's events. */
  emit<K extends keyof DocHandleEvents>(event: K, value: DocHandleEvents[K]): void;
  /** Reports an unexpected failure as an 'error' event of `kind`. */
  fail(error: unknown, kind: ErrorKind): void;
  /** Resolves once every local edit made so far is stored (read it after making one). */
  stored(): Promise<void>;
  /** Rebuilds the doc from the local store, dropping unconfirmed edits when `dropPending`. */
  reset(dropPending: boolean): Promise<void>;
  /** Sends the whole outbox again (through {@link DocChannel.send}). */
  flush(): Promise<void>;
  /** Compacts the local log when it has grown past the threshold. */
  compact(): void;
}

/**
 * How one document syncs with the relay: plaintext Yjs sync or the encrypted envelope log. The
 * handle owns the lifecycle, the local edits and the subscription's phase; a channel owns what
 * goes over the socket for the doc's data and what comes back.
 */
export interface DocChannel {
  /** The subscribe mode this channel speaks. */
  readonly mode: SubscribeMode;
  /** Runs the handling of one received message, in the order the channel needs. */
  run(task: () => Promise<void>): Promise<void>;
  /** The local log was loaded: take what the channel remembers from its metadata. */
  loaded(meta: Readonly<DocMeta>): void;
  /** Sends subscribe with `flags` and the greeting that starts catching up. */
  subscribe(flags: DocFlags): void;
  /** The relay granted `access` on the current subscription: send what waited for it. */
  granted(access: 'read' | 'read-write'): Promise<void>;
  /** Sends stored local edits not already in flight, when the channel may send now. */
  send(entries: readonly OutboxEntry[]): void;
  /** Handles a data message from the relay; false when it is not one this channel speaks. */
  receive(message: Message): Promise<boolean>;
  /** The relay stored request `ref` as entry `seq`. */
  ack(ref: number, seq: number): Promise<void>;
  /** The relay refused request `ref` with `error`. */
  refused(ref: number, error: SyncError): Promise<Refusal>;
  /** Nothing in flight will be acked any more (its edits were dropped or the doc wiped). */
  forget(): void;
  /** Outbox entries through local seq `through` were merged into a new one: forget them in flight. */
  merged(through: number): void;
  /** The doc was rebuilt from the store (a reset): catch up again where the channel needs to. */
  rebuilt(): void;
  /** The subscription is gone (socket closed, ended by the relay, handle closed). */
  detach(): void;
  /** An awareness update of ours as it goes to the relay (sealed on encrypted docs). */
  sealAwareness(update: Uint8Array): Promise<Uint8Array>;
  /** An awareness update from the relay as the doc's awareness takes it (opened on encrypted docs; undefined: nothing to apply). */
  openAwareness(update: Uint8Array): Promise<Uint8Array | undefined>;
  /**
   * True while the channel is making refused edits again (a re-seal): the outbox may be empty
   * meanwhile, and that is not an ack. The channel emits 'pending' when it is done.
   */
  remaking(): boolean;
}
