import type { DocName, DocStore, EncEntry } from '@scopesync/core';
import * as Y from 'yjs';
import { forEachBounded, SWEEP_CONCURRENCY } from '../bounded-work.ts';
import type { EventBus } from '../events/event-bus.ts';
import {
  type ChangeOrigin,
  type DocCommitted,
  type DocUpdated,
  type DocWriteFailed,
  docLane,
  type EnvelopeAppended,
} from '../events/relay-events.ts';
import type { Counter, Metrics } from '../metrics.ts';

/** What the feed needs from the documents this relay holds. */
export interface ReplicaTarget {
  /**
   * The loaded copy of a document: `head` is the seq through which it held every committed
   * entry when it was loaded, `loadId` changes with every (re)load. Null when not loaded.
   */
  replicaOf(
    name: DocName,
  ): { readonly loadId: number; readonly head: number; readonly encrypted: boolean } | null;
  /**
   * Applies updates another relay applied or committed to the loaded copy `loadId`, without
   * storing them: whether they changed it, or 'gone' when that copy is no longer in memory.
   */
  applyReplicated(name: DocName, loadId: number, updates: readonly Uint8Array[]): ReplicaApply;
  /** Drops the loaded copy of a document and loads it again from the store (if someone holds it). */
  reload(name: DocName): Promise<void>;
  /** Names of the documents someone holds here: the ones to keep current. */
  heldNames(): Iterable<DocName>;
  /** The encrypted log after `sinceSeq`. */
  fetchEncrypted(name: DocName, sinceSeq: number): Promise<{ entries: EncEntry[] }>;
}

/** What applying replicated updates did to a loaded copy. */
export type ReplicaApply = 'changed' | 'unchanged' | 'gone';

/**
 * Another relay's document event, as the feed takes it: an update as applied there (no seq,
 * before its commit), its commit (with the seq), a failed commit, or an encrypted envelope.
 */
export type FeedEvent = DocUpdated | DocCommitted | DocWriteFailed | EnvelopeAppended;

/** Options of a {@link DocFeed}. */
export interface DocFeedOptions {
  readonly bus: EventBus;
  readonly target: ReplicaTarget;
  readonly store: DocStore;
  /** How often followed documents are compared with the store's head, in ms; 0 never. Default 5000. */
  readonly idleCheckMs?: number | undefined;
  /**
   * How long a document the idle check finds behind the store is given for the messages of
   * commits still in flight to arrive, before its log is read, in ms. Default 250; 0 reads at once.
   */
  readonly inFlightGraceMs?: number | undefined;
  readonly log: (level: 'warn' | 'error', message: string, context?: Record<string, unknown>) => void;
  /** Where catch-ups from the store are counted. */
  readonly metrics?: Metrics | undefined;
}

interface Followed {
  readonly loadId: number;
  /** Every committed seq up to here is in this relay's copy and was delivered to its sockets. */
  watermark: number;
  /** Seqs past the watermark already seen (committed here, or delivered from another relay). */
  readonly seen: Set<number>;
  /** A read of the store under way. */
  catchingUp: Promise<void> | null;
}

/** One update holding them all; entries that are not Yjs updates (skipped on apply) are left out. */
function merged(updates: readonly Uint8Array[]): Uint8Array {
  if (updates.length === 1) return updates[0] as Uint8Array;
  try {
    return Y.mergeUpdates(updates as Uint8Array[]);
  } catch {
    return Y.mergeUpdates(updates.filter(isYjsUpdate) as Uint8Array[]);
  }
}

function isYjsUpdate(update: Uint8Array): boolean {
  try {
    Y.decodeUpdate(update);
    return true;
  } catch {
    return false;
  }
}

/** Documents whose heads the idle check reads in one query. */
const HEADS_PER_READ = 1000;

/** How long a gap in a document's seqs may stay before its log is read (see `#takeCommitted`), in ms. */
const GAP_GRACE_MS = 100;

/** See {@link DocFeedOptions.inFlightGraceMs}. */
const DEFAULT_IN_FLIGHT_GRACE_MS = 250;

/** A document the idle check found behind the store, and the store's head then (∞ unknown). */
interface Behind {
  readonly name: DocName;
  readonly head: number;
}

/** The origin of what the feed read from the store itself. */
const STORE_ORIGIN: ChangeOrigin = Object.freeze({ source: 'relay', relayId: 'store' });

/**
 * Follows, across relays, the documents this relay holds. Another relay's update reaches this
 * relay's copy and sockets as soon as that relay applied it (before its commit, as its own
 * readers get it); its commit follows with the seq, which the feed tracks in order: it drops
 * what it has seen (an update already applied is not sent again) and reads whatever is missing
 * from the store — after a gap, after the transport reconnected, and on an idle timer. A commit
 * that failed on the writer's relay makes this relay reload its copy from the store. The store is
 * the truth: a lost message only delays delivery, and nothing is ever written back.
 */
export class DocFeed {
  readonly #bus: EventBus;
  readonly #target: ReplicaTarget;
  readonly #store: DocStore;
  readonly #log: DocFeedOptions['log'];
  readonly #followed = new Map<DocName, Followed>();
  readonly #off: Array<() => void>;
  readonly #timer: NodeJS.Timeout | null;
  readonly #catchUps: Counter | null;
  readonly #caughtUp: Counter | null;
  readonly #inFlightGraceMs: number;
  #closed = false;

  constructor(options: DocFeedOptions) {
    this.#catchUps =
      options.metrics?.counter(
        'scopesync_feed_catchups_total',
        'Reads of the store for writes of other relays this relay missed (gap, reconnect, idle check).',
      ) ?? null;
    this.#caughtUp =
      options.metrics?.counter(
        'scopesync_feed_catchup_entries_total',
        'Entries delivered from the store by those reads.',
      ) ?? null;
    this.#inFlightGraceMs = options.inFlightGraceMs ?? DEFAULT_IN_FLIGHT_GRACE_MS;
    this.#bus = options.bus;
    this.#target = options.target;
    this.#store = options.store;
    this.#log = options.log;
    // Writes committed by this relay: its copy has them already.
    this.#off = [
      this.#bus.on('doc-committed', (event) => {
        if (event.origin.source !== 'relay') this.#markSeen(event.name, event.seq);
      }),
      this.#bus.on('envelope-appended', (event) => {
        if (event.origin.source !== 'relay') this.#markSeen(event.name, event.entry.seq);
      }),
    ];
    const every = options.idleCheckMs ?? 5000;
    this.#timer = every > 0 ? setInterval(() => void this.catchUpAll(), every) : null;
    this.#timer?.unref();
  }

  /**
   * Takes another relay's document event (see `ClusterLink`). It is handled in the document's
   * lane of the bus, behind any access change that relay published before it: until that change
   * has been applied to every subscription here, the write is neither in this relay's copy (a
   * SyncStep1 answer could carry it) nor sent to anyone.
   */
  receive(event: FeedEvent): void {
    if (this.#closed) return;
    void this.#bus.serialize(docLane(event.name), async () => {
      if (event.type === 'doc-updated') this.#applyEarly(event);
      else if (event.type === 'doc-write-failed') await this.#reload(event);
      else this.#apply(event);
    });
  }

  /**
   * An update as another relay applied it, before its commit: into this relay's copy and out to
   * its sockets at once, like that relay's own readers. Its commit arrives later and only moves
   * the watermark (the update is already here). Should the commit fail, `doc-write-failed`
   * follows, and the writer resends (its update stays in its outbox until acked).
   */
  #applyEarly(event: DocUpdated): void {
    if (this.#closed) return;
    const followed = this.#follow(event.name);
    if (!followed) return;
    if (this.#target.applyReplicated(event.name, followed.loadId, [event.update]) !== 'changed') return;
    void this.#bus.publish(event);
  }

  /** Another relay could not store what it had sent: reload this copy, so it serves only what is stored. */
  async #reload(event: DocWriteFailed): Promise<void> {
    if (this.#closed) return;
    this.#followed.delete(event.name);
    try {
      await this.#target.reload(event.name);
    } catch (error) {
      this.#log('warn', 'reloading a document after another relay failed to store it failed', {
        doc: event.name,
        error,
      });
    }
  }

  #apply(event: DocCommitted | EnvelopeAppended): void {
    if (this.#closed) return;
    const seq = event.type === 'doc-committed' ? event.seq : event.entry.seq;
    const followed = this.#follow(event.name);
    if (!followed || seq <= followed.watermark || followed.seen.has(seq)) return;
    if (event.type === 'doc-committed' && !followed.catchingUp) {
      this.#takeCommitted(event, followed);
      return;
    }
    if (seq !== followed.watermark + 1 || followed.catchingUp) {
      // Something before it was lost or is late: read the store from the watermark on.
      void this.#catchUp(event.name, followed);
      return;
    }
    this.#advance(followed, seq);
    void this.#bus.publish(event);
  }

  /**
   * Another relay's commit: its update into this copy and, only if it brought something new,
   * out to this relay's sockets (mostly it arrived before its commit, `#applyEarly`: nothing to
   * send). The next seq moves the watermark. A seq past a gap is noted as seen: mostly the gap is
   * this relay's own commits, still waiting for PostgreSQL's answer when another relay's later
   * one arrives; their content is in this copy already, and their answers fill the gap within
   * milliseconds (388 of 389 gaps in a probe of two relays; bench/results-cluster.md, run L).
   * Yjs keeps what it cannot integrate yet, and the store is read only if the gap is still there
   * after {@link GAP_GRACE_MS}.
   */
  #takeCommitted(event: DocCommitted, followed: Followed): void {
    const applied = this.#target.applyReplicated(event.name, followed.loadId, [event.update]);
    if (applied === 'gone') return;
    if (applied === 'changed') {
      void this.#bus.publish({
        type: 'doc-updated',
        name: event.name,
        update: event.update,
        seq: event.seq,
        origin: event.origin,
      });
    }
    if (event.seq === followed.watermark + 1) {
      this.#advance(followed, event.seq);
      return;
    }
    followed.seen.add(event.seq);
    setTimeout(() => {
      if (this.#closed || this.#followed.get(event.name) !== followed) return;
      if (followed.watermark < event.seq) void this.#catchUp(event.name, followed);
    }, GAP_GRACE_MS).unref();
  }

  /** Compares every followed document with the store and delivers what is missing. Never rejects. */
  async catchUpAll(): Promise<void> {
    const held = new Set(this.#target.heldNames());
    let behind = await this.#behindTheStore([...new Set([...this.#followed.keys(), ...held])], held);
    if (this.#inFlightGraceMs > 0 && behind.length > 0) {
      // Under steady writes most documents are behind the heads just read only by commits whose
      // messages are a few ms away: their logs were read at every check for nothing (run L).
      await new Promise((resolve) => setTimeout(resolve, this.#inFlightGraceMs).unref());
      behind = behind.filter(({ name, head }) => this.#isBehind(name, head, held));
    }
    // A few documents at a time (see `SWEEP_CONCURRENCY`): the reads run beside the writes.
    await forEachBounded(behind, SWEEP_CONCURRENCY, ({ name }) => {
      const followed = this.#follow(name);
      if (followed) return this.#catchUp(name, followed);
      // A held copy that is not there to follow: its reload after a failed commit failed too
      // (the store was down), and until it is reloaded every write of the others is dropped here.
      if (held.has(name)) return this.#retryReload(name);
      return Promise.resolve();
    });
  }

  /**
   * The documents among `names` that may hold entries this relay has not delivered: with a store
   * that reads many heads at once, only those whose head is past the watermark, and held copies
   * not followed (one read per {@link HEADS_PER_READ} documents instead of one each, every few
   * seconds); otherwise all.
   */
  async #behindTheStore(names: DocName[], held: ReadonlySet<DocName>): Promise<Behind[]> {
    const store = this.#store;
    if (store.heads === undefined) return names.map((name) => ({ name, head: Number.POSITIVE_INFINITY }));
    const behind: Behind[] = [];
    for (let i = 0; i < names.length; i += HEADS_PER_READ) {
      const chunk = names.slice(i, i + HEADS_PER_READ);
      let heads: Map<string, number>;
      try {
        heads = await store.heads(chunk);
      } catch (error) {
        this.#log('warn', 'reading the heads of followed documents failed; retrying on the next tick', {
          error,
        });
        return behind;
      }
      for (const name of chunk) {
        const head = heads.get(name) ?? 0;
        if (this.#isBehind(name, head, held)) behind.push({ name, head });
      }
    }
    return behind;
  }

  /**
   * Whether the store's `head` of a document is past what this relay delivered of it, or the
   * document is held but not followed: a copy whose reload failed, to be reloaded (see `catchUpAll`).
   */
  #isBehind(name: DocName, head: number, held: ReadonlySet<DocName>): boolean {
    const followed = this.#follow(name);
    return followed === null ? held.has(name) : head > followed.watermark;
  }

  async #retryReload(name: DocName): Promise<void> {
    try {
      await this.#target.reload(name);
    } catch (error) {
      this.#log(
        'warn',
        'reloading a document this relay could not follow failed; retrying on the next tick',
        {
          doc: name,
          error,
        },
      );
    }
  }

  /** Stops following. Idempotent. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const off of this.#off.splice(0)) off();
    this.#followed.clear();
  }

  /** The document's state, (re)started from its loaded copy; null when this relay does not hold it. */
  #follow(name: DocName): Followed | null {
    const replica = this.#target.replicaOf(name);
    if (!replica) {
      this.#followed.delete(name);
      return null;
    }
    let followed = this.#followed.get(name);
    if (!followed || followed.loadId !== replica.loadId) {
      followed = { loadId: replica.loadId, watermark: replica.head, seen: new Set(), catchingUp: null };
      this.#followed.set(name, followed);
    }
    return followed;
  }

  #markSeen(name: DocName, seq: number): void {
    const followed = this.#follow(name);
    if (!followed || seq <= followed.watermark) return;
    if (seq === followed.watermark + 1) this.#advance(followed, seq);
    else followed.seen.add(seq);
  }

  /** Moves the watermark to `seq`, then over every seq already seen right after it. */
  #advance(followed: Followed, seq: number): void {
    followed.watermark = Math.max(followed.watermark, seq);
    while (followed.seen.delete(followed.watermark + 1)) followed.watermark += 1;
    for (const s of followed.seen) if (s <= followed.watermark) followed.seen.delete(s);
  }

  #catchUp(name: DocName, followed: Followed): Promise<void> {
    // Read outside the lane; applied in it (like `receive`), behind access changes.
    if (followed.catchingUp === null) this.#catchUps?.inc();
    followed.catchingUp ??= this.#readStore(name, followed)
      .catch((error: unknown) => {
        this.#log(
          'warn',
          'catching up a document from the store failed; retrying on the next event or tick',
          {
            doc: name,
            error,
          },
        );
      })
      .finally(() => {
        followed.catchingUp = null;
      });
    return followed.catchingUp;
  }

  async #readStore(name: DocName, followed: Followed): Promise<void> {
    const replica = this.#target.replicaOf(name);
    if (!replica || replica.loadId !== followed.loadId) return;
    if (replica.encrypted) {
      const { entries } = await this.#target.fetchEncrypted(name, followed.watermark);
      await this.#bus.serialize(docLane(name), async () => {
        for (const entry of entries) {
          if (entry.seq <= followed.watermark) continue;
          const seen = followed.seen.has(entry.seq);
          this.#advance(followed, entry.seq);
          if (seen) continue;
          this.#caughtUp?.inc();
          void this.#bus.publish({ type: 'envelope-appended', name, entry, origin: STORE_ORIGIN });
        }
      });
      return;
    }
    const head = await this.#store.head(name);
    if (head <= followed.watermark) return;
    const entries = await this.#store.load(name, followed.watermark);
    const last = entries.at(-1)?.seq;
    if (last === undefined) return;
    const missing = entries.filter((e) => e.seq > followed.watermark && !followed.seen.has(e.seq));
    await this.#bus.serialize(docLane(name), async () => {
      if (this.#followed.get(name) !== followed) return;
      const fresh = missing.filter((e) => e.seq > followed.watermark && !followed.seen.has(e.seq));
      if (fresh.length > 0) {
        const updates = fresh.map((e) => e.data);
        const applied = this.#target.applyReplicated(name, followed.loadId, updates);
        if (applied === 'gone') return;
        this.#caughtUp?.inc(fresh.length);
        // Published, not awaited: it runs in this lane right after this task.
        if (applied === 'changed')
          void this.#bus.publish({
            type: 'doc-updated',
            name,
            update: merged(updates),
            seq: last,
            origin: STORE_ORIGIN,
          });
      }
      this.#advance(followed, last);
    });
  }
}
