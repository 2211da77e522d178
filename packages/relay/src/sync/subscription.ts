import type {
  Address,
  DocAccess,
  DocName,
  EncEntry,
  Message,
  SubscribeMode,
  SyncError,
} from '@scopesync/core';
import type { DocHold } from '../documents/doc-registry.ts';
import type { AwarenessPeer } from './awareness-room.ts';
import { SharedFrame } from './shared-frame.ts';
import type { SocketSession } from './socket-session.ts';
import type { RequestedFlags } from './sync-authority.ts';

/** Where a subscription stands with its first write. */
export type WriteState =
  /** Not attempted since the access was last decided. */
  | { readonly status: 'unchecked' }
  /** Checked (audited) and the object prepared: later writes go straight through. */
  | { readonly status: 'authorized' }
  /**
   * Refused. Once `audited` (the first refused attempt is recorded), later writes are refused
   * without another entry; a denial known only from a probe is checked for real on the first write.
   */
  | { readonly status: 'denied'; readonly reason: string; readonly audited: boolean };

/**
 * The one state of a subscription; transitions replace it whole, so a decision taken against
 * an older state can tell (by identity) that it is stale.
 */
export type SubscriptionState =
  /** The document is absent or hidden from the caller (the same to them): nothing of it is sent. */
  | { readonly phase: 'waiting' }
  /**
   * Syncing. `exists` is false for an object the caller may create that nobody has yet;
   * `readAudited` says the cross-user read this subscription makes has been audited.
   * `posing`: the object exists but is hidden from a caller who could create it were it absent,
   * so the subscription looks exactly like one to an absent object (docs/security.md,
   * "Existence"): it sees an empty document, nothing of the real one, and its first write ends
   * it as if someone had just created the object — it never writes into it.
   */
  | {
      readonly phase: 'active';
      readonly access: Exclude<DocAccess, 'none' | 'waiting'>;
      readonly exists: boolean;
      readonly posing: boolean;
      readonly readAudited: boolean;
      readonly write: WriteState;
    }
  /** Over: unsubscribed, refused, revoked, deleted, or its socket closed. */
  | { readonly phase: 'ended' };

/** The state of a subscription that is syncing. */
export type ActiveState = Extract<SubscriptionState, { phase: 'active' }>;

/** What an endpoint does when the relay changes a subscription's access (the protocols differ). */
export interface SubscriptionListener {
  /**
   * A waiting subscription may read now. Called in the document's lane, before any later
   * update of it is pushed: announce it here (synchronously), start the sync after.
   */
  activated(sub: Subscription): void;
  /** Its access changed between read and read-write. */
  accessChanged(sub: Subscription, access: ActiveState['access'], reason: string): void;
  /** It lost read access (`deleted`: the document was deleted); the subscription has ended. */
  lost(sub: Subscription, reason: string, deleted: boolean): void;
  /**
   * Its access could not be verified for now (the store unreachable); the subscription has
   * ended. Not a revocation: the client must subscribe again later, not drop its copy.
   */
  interrupted(sub: Subscription, error: SyncError): void;
}

/**
 * Encoded frames of awareness broadcasts, by the broadcast's bytes and the endpoint kind. A
 * room's broadcast bytes belong to one document, so the same bytes always encode the same way.
 */
const awarenessFrames = new WeakMap<Uint8Array, Map<SocketSession['endpoint'], SharedFrame | null>>();

/** Options of a {@link Subscription}. */
export interface SubscriptionOptions {
  readonly session: SocketSession;
  readonly mode: SubscribeMode;
  /** Flags to create the object with, or change it to, on the first write. */
  readonly flags: RequestedFlags;
  readonly listener: SubscriptionListener;
  /**
   * Encodes a message about document `name` for this subscription's endpoint; null when the
   * endpoint has no such frame. One function per endpoint, shared by its subscriptions.
   */
  readonly encode: (message: Message, name: DocName) => Uint8Array | null;
}

/**
 * One socket's interest in one document. What it may see is its {@link SubscriptionState};
 * pushes of document content go out only while it is active. It is its own participant of the
 * document's awareness room ({@link AwarenessPeer}), so a subscription allocates no peer object
 * or closure of its own.
 */
export class Subscription implements AwarenessPeer {
  readonly session: SocketSession;
  readonly address: Address;
  readonly mode: SubscribeMode;
  readonly flags: RequestedFlags;
  readonly listener: SubscriptionListener;
  /** Keeps the document loaded while active; set by the endpoint that started it. */
  hold: DocHold | null = null;
  /**
   * Encrypted subscriptions: live entries held back until the initial fetch has been sent, so
   * the client sees the log in order. Null once it has.
   */
  liveBuffer: EncEntry[] | null;
  readonly #encode: SubscriptionOptions['encode'];
  #state: SubscriptionState;

  /**
   * `options` are read, not kept (an admission's request serves as is): `address` is the
   * document's one shared address, `state` the admission's decision.
   */
  constructor(options: SubscriptionOptions, address: Address, state: SubscriptionState) {
    this.session = options.session;
    this.address = address;
    this.mode = options.mode;
    this.flags = options.flags;
    this.listener = options.listener;
    this.#state = state;
    this.#encode = options.encode;
    this.liveBuffer = options.mode === 'encrypted' ? [] : null;
  }

  /** The document's name. */
  get name(): DocName {
    return this.address.name;
  }

  /** The caller's id, written into each awareness state it sends (see {@link AwarenessPeer}). */
  get userId(): string {
    return this.session.callerId;
  }

  /** A user's subscriptions may take over each other's awareness client ids; a guest's never. */
  get claimKey(): string | null {
    return this.session.caller.kind === 'user' ? this.session.callerId : null;
  }

  /** Delivers an awareness broadcast of its room (see {@link AwarenessPeer}). */
  send(update: Uint8Array): void {
    this.#pushAwareness(update);
  }

  /** The current state. */
  get state(): SubscriptionState {
    return this.#state;
  }

  /** Whether it is syncing. */
  get active(): boolean {
    return this.#state.phase === 'active';
  }

  /** Whether it poses as a subscription to an absent object (see {@link SubscriptionState}). */
  get posing(): boolean {
    return this.#state.phase === 'active' && this.#state.posing;
  }

  /** Moves to `next`. An ended subscription stays ended. */
  transition(next: SubscriptionState): void {
    if (this.#state.phase === 'ended') return;
    this.#state = next;
  }

  /** Pushes document content (updates, entries, awareness): only while active. */
  push(message: Message): void {
    if (this.#state.phase !== 'active') return;
    const frame = this.#encode(message, this.name);
    if (frame) this.session.sendFrame(frame);
  }

  /**
   * Sends an already encoded push frame of the document's own traffic, shared with the
   * document's other sockets: only while active, never while posing.
   */
  pushFrame(frame: SharedFrame): void {
    if (this.#state.phase === 'active' && !this.#state.posing) this.session.sendShared(frame);
  }

  /**
   * Pushes an awareness broadcast. A room hands every peer the same bytes, so the frame is
   * encoded once per endpoint kind and shared by every socket of that kind, not once per socket.
   */
  #pushAwareness(update: Uint8Array): void {
    if (this.#state.phase !== 'active') return;
    let byEndpoint = awarenessFrames.get(update);
    if (!byEndpoint) {
      byEndpoint = new Map();
      awarenessFrames.set(update, byEndpoint);
    }
    const endpoint = this.session.endpoint;
    let frame = byEndpoint.get(endpoint);
    if (frame === undefined) {
      const bytes = this.#encode({ type: 'awareness', update }, this.name);
      frame = bytes === null ? null : new SharedFrame(bytes);
      byEndpoint.set(endpoint, frame);
    }
    if (frame) this.session.sendShared(frame);
  }

  /**
   * Sends an answer (permission, ack, error): it goes out even after the subscription ended,
   * since an ack reports durability whether or not the client still listens.
   */
  answer(message: Message): void {
    const frame = this.#encode(message, this.name);
    if (frame) this.session.sendFrame(frame);
  }
}
