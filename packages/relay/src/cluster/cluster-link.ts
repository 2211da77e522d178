import { SyncError } from '@scopesync/core';
import type { FeedEvent } from '../documents/doc-feed.ts';
import type { EventBus } from '../events/event-bus.ts';
import { RELAY_EVENT_TYPES } from '../events/event-metrics.ts';
import type { RelayEvent } from '../events/relay-events.ts';
import type { Counter, LabeledCounter, Metrics } from '../metrics.ts';
import {
  type ClusterEvent,
  decodeClusterEvents,
  decodeHeartbeat,
  encodeClusterEvent,
  encodeClusterEvents,
  encodeHeartbeat,
  isClusterEvent,
} from './cluster-codec.ts';
import type { ClusterTransport } from './cluster-transport.ts';
import type { DeliveryLease } from './delivery-lease.ts';
import type { NarrowingFence } from './narrowing-fence.ts';

/** Options of a {@link ClusterLink}. */
export interface ClusterLinkOptions {
  readonly bus: EventBus;
  readonly transport: ClusterTransport;
  /**
   * Takes other relays' document writes — applied (before their commit), committed, failed to
   * commit — and envelopes: it applies them to this relay's copy, drops duplicates, reads gaps
   * from the store and publishes them on the bus (see `DocFeed`).
   */
  readonly docEvents: (event: FeedEvent) => void;
  /** Called after the transport came back: whatever was sent meanwhile is lost, so catch up. */
  readonly catchUp: () => void;
  readonly log: (level: 'warn' | 'error', message: string, context?: Record<string, unknown>) => void;
  /** Where events sent to and received from other relays are counted. */
  readonly metrics?: Metrics | undefined;
  /**
   * This relay's delivery lease, kept by heartbeats on the transport (which must offer `onEcho`);
   * with it, `fence` and `revalidate` are required. Without it: no heartbeats, no waits.
   */
  readonly lease?: DeliveryLease | undefined;
  /** Where publications of access narrowings are tracked, so answers can wait for them. */
  readonly fence?: NarrowingFence | undefined;
  /** Checks every open socket against the stores (after a loss, before the lease holds again). */
  readonly revalidate?: (() => Promise<void>) | undefined;
  /** How often a heartbeat is published, in ms. Default 200; well under the lease. */
  readonly heartbeatMs?: number | undefined;
}

/** Most events one message carries: a turn that forwards more sends several. */
const MAX_EVENTS_PER_MESSAGE = 256;

/** Whether an event can take access away from someone (and its answer must wait for the fence). */
export function narrowsAccess(event: RelayEvent): boolean {
  switch (event.type) {
    case 'access-changed':
      return event.cause !== 'created';
    case 'doc-removed':
    case 'credential-revoked':
    case 'level-changed':
      return true;
    default:
      return false;
  }
}

/**
 * Joins this relay's event bus to the other relays': events that happened here (an update as
 * soon as it is applied, then its commit, an envelope, awareness from a local socket, access and
 * account changes) go out on the transport, and theirs are published on this bus, where they take
 * the same path as local ones (document writes first pass through the document feed, which
 * applies them to this relay's copy and puts commits in seq order).
 */
export class ClusterLink {
  readonly #bus: EventBus;
  readonly #transport: ClusterTransport;
  readonly #log: ClusterLinkOptions['log'];
  readonly #docEvents: ClusterLinkOptions['docEvents'];
  /** Events that came from another relay: never sent back out. */
  readonly #remote = new WeakSet<RelayEvent>();
  readonly #off: Array<() => void> = [];
  readonly #sent: LabeledCounter | null;
  readonly #received: LabeledCounter | null;
  readonly #dropped: Counter | null;
  readonly #lease: DeliveryLease | null;
  readonly #fence: NarrowingFence | null;
  readonly #revalidate: () => Promise<void>;
  #heartbeat: NodeJS.Timeout | null = null;
  /** A heartbeat not yet answered by the transport: no second one piles up behind it (a paused Redis). */
  #beating = false;
  /** Events forwarded in this turn of the loop, sent together at its end (see {@link #forward}). */
  #pending: ClusterEvent[] = [];
  #flush: NodeJS.Immediate | null = null;
  /** Messages of events sent and not yet answered by the transport. */
  #unanswered = 0;
  #closed = false;

  constructor(options: ClusterLinkOptions) {
    const m = options.metrics;
    this.#sent =
      m?.labeledCounter(
        'scopesync_cluster_events_sent_total',
        'Events sent to the other relays, by type.',
        'type',
        RELAY_EVENT_TYPES,
      ) ?? null;
    this.#received =
      m?.labeledCounter(
        'scopesync_cluster_events_received_total',
        'Events received from the other relays, by type.',
        'type',
        RELAY_EVENT_TYPES,
      ) ?? null;
    this.#dropped =
      m?.counter(
        'scopesync_cluster_messages_dropped_total',
        'Messages from other relays dropped because they could not be decoded.',
      ) ?? null;
    this.#bus = options.bus;
    this.#transport = options.transport;
    this.#log = options.log;
    this.#docEvents = options.docEvents;
    const forward = (event: RelayEvent): void => this.#forward(event);
    for (const type of [
      'doc-updated',
      'doc-committed',
      'doc-write-failed',
      'envelope-appended',
      'awareness-changed',
      'access-changed',
      'doc-removed',
      'credential-revoked',
      'level-changed',
    ] as const) {
      this.#off.push(this.#bus.on(type, forward));
    }
    this.#transport.onMessage((bytes) => this.#receive(bytes));
    this.#transport.onReconnect(options.catchUp);
    this.#lease = options.lease ?? null;
    this.#fence = options.fence ?? null;
    this.#revalidate = options.revalidate ?? (() => Promise.resolve());
    const lease = this.#lease;
    if (lease !== null) {
      if (!this.#transport.onEcho)
        throw new SyncError('BadRequest', 'a delivery lease needs a transport that echoes');
      this.#transport.onEcho((bytes) => this.#echo(lease, bytes));
      this.#transport.onLoss?.(() => lease.lost());
      this.#heartbeat = setInterval(() => this.#beat(lease), options.heartbeatMs ?? 200);
      this.#heartbeat.unref();
      this.#beat(lease);
    }
  }

  /** Stops forwarding and closes the transport. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#sendPending();
    this.#closed = true;
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    for (const off of this.#off.splice(0)) off();
    await this.#transport.close();
  }

  #forward(event: RelayEvent): void {
    if (this.#closed || this.#remote.has(event) || !isClusterEvent(event)) return;
    // Awareness only from this relay's own sockets; a relay origin means it came from elsewhere.
    if ('origin' in event && event.origin.source === 'relay') return;
    this.#sent?.labels(event.type).inc();
    if (this.#fence !== null && narrowsAccess(event)) {
      // Alone, after everything forwarded before it, so that Redis's answer to this PUBLISH is
      // the one the fence waits on; retried if it fails, and answers wait on the fence.
      this.#sendPending();
      const bytes = encodeClusterEvent(this.#transport.relayId, event);
      this.#fence.track(() => (this.#closed ? Promise.resolve(true) : this.#transport.send(bytes)));
      return;
    }
    // While a message of this link is still unanswered, what follows waits for the end of the
    // turn and goes out with everything else the turn forwarded, as one message. One PUBLISH per
    // event (an update's application and its commit: two per edit) queued thousands in the
    // publisher's connection at 8,000 edits/s; the heartbeats waited behind them, the delivery
    // lease ran out, and every delivery then read the store (bench/results-cluster.md, run L).
    // An event with nothing ahead of it goes at once: a lone edit reaches the others no later.
    if (this.#unanswered === 0 && this.#pending.length === 0) {
      this.#send([event]);
      return;
    }
    this.#pending.push(event);
    if (this.#pending.length >= MAX_EVENTS_PER_MESSAGE) this.#sendPending();
    else this.#flush ??= setImmediate(() => this.#sendPending());
  }

  /** Sends the events forwarded so far as one message. */
  #sendPending(): void {
    if (this.#flush !== null) clearImmediate(this.#flush);
    this.#flush = null;
    if (this.#pending.length === 0 || this.#closed) return;
    const events = this.#pending;
    this.#pending = [];
    this.#send(events);
  }

  /** Sends `events` as one message (best effort: the stores are the truth). */
  #send(events: readonly ClusterEvent[]): void {
    this.#unanswered++;
    void this.#transport.send(encodeClusterEvents(this.#transport.relayId, events)).finally(() => {
      this.#unanswered--;
    });
  }

  #beat(lease: DeliveryLease): void {
    if (this.#closed || this.#beating) return;
    this.#beating = true;
    void this.#transport.send(encodeHeartbeat(this.#transport.relayId, lease.stamp())).finally(() => {
      this.#beating = false;
    });
  }

  #echo(lease: DeliveryLease, bytes: Uint8Array): void {
    if (this.#closed) return;
    const sentAt = decodeHeartbeat(bytes);
    if (sentAt === null) return; // an echo of an event: nothing to learn
    const revalidating = lease.echoed(sentAt);
    // Started only now, after an echo proved the subscription is back: whatever was lost was
    // committed before it, so this check of every socket against the store sees it.
    if (revalidating !== null) revalidating(this.#revalidate());
  }

  #receive(bytes: Uint8Array): void {
    if (this.#closed) return;
    if (decodeHeartbeat(bytes) !== null) return; // another relay's heartbeat: only it reads it
    let events: RelayEvent[];
    try {
      events = decodeClusterEvents(bytes).events;
    } catch (error) {
      // One bad message must not stop delivery for every document (y-redis's yhub#61).
      this.#dropped?.inc();
      this.#log('warn', 'dropped a malformed message from another relay', { error });
      return;
    }
    for (const event of events) {
      this.#received?.labels(event.type).inc();
      if (
        event.type === 'doc-updated' ||
        event.type === 'doc-committed' ||
        event.type === 'doc-write-failed' ||
        event.type === 'envelope-appended'
      ) {
        this.#docEvents(event);
        continue;
      }
      this.#remote.add(event);
      void this.#bus.publish(event);
    }
  }
}
