import {
  type DocAccess,
  type DocStore,
  type KeyValueStore,
  type ReadFlag,
  SyncError,
  type WriteFlag,
} from '@scopesync/core';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as Y from 'yjs';
import { KV_TABLES } from './client-store.ts';
import { SerialQueue } from './serial-queue.ts';

/** Settled entries {@link LocalDocLog.compactSettled} merges into one snapshot, at least. */
export const SETTLED_MERGE_ON_LOAD = 8;

/**
 * What a stored log entry is. The tag is part of the stored bytes, so an update and its
 * place in the outbox are written in ONE append: the outbox is derived from the log (every
 * `Local` entry the relay has not acknowledged), and a crash can neither lose an edit nor
 * leave an outbox entry without its update.
 */
export const EntryTag = {
  /** A local edit: in the outbox until the relay acknowledges it. */
  Local: 0,
  /** An update received from the relay; never sent back. */
  Remote: 1,
  /** Merged older entries (compaction); never sent. */
  Snapshot: 2,
} as const;

/** One of the {@link EntryTag} values. */
export type EntryTag = (typeof EntryTag)[keyof typeof EntryTag];

/** A decoded log entry. `payload` is a Yjs update for plaintext docs, an envelope for encrypted ones. */
export interface LogEntry {
  readonly seq: number;
  readonly tag: EntryTag;
  /** The relay's sequence number of the newest data in the entry (encrypted docs), 0 when unknown. */
  readonly serverSeq: number;
  readonly payload: Uint8Array;
}

/** Encodes a stored entry: tag, server seq, payload. */
export function encodeEntry(tag: EntryTag, serverSeq: number, payload: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeUint8(encoder, tag);
  encoding.writeVarUint(encoder, serverSeq);
  encoding.writeUint8Array(encoder, payload);
  return encoding.toUint8Array(encoder);
}

/** Decodes a stored entry; throws Internal for bytes this client did not write. */
export function decodeEntry(seq: number, data: Uint8Array): LogEntry {
  try {
    const decoder = decoding.createDecoder(data);
    const tag = decoding.readUint8(decoder);
    if (tag !== EntryTag.Local && tag !== EntryTag.Remote && tag !== EntryTag.Snapshot)
      throw new Error(`unknown tag ${tag}`);
    const serverSeq = decoding.readVarUint(decoder);
    const payload = decoding.readUint8Array(decoder, decoder.arr.length - decoder.pos);
    return { seq, tag, serverSeq, payload };
  } catch (error) {
    throw new SyncError('Internal', `local log entry ${seq} is corrupt`, { cause: error });
  }
}

/** What the client remembers about a document between sessions (the `docs` table). */
export interface DocMeta {
  readonly name: string;
  /** Access as the relay last reported it ('none' only in records written before 'waiting' existed). */
  access?: DocAccess | undefined;
  accessReason?: string | undefined;
  /** Object flags the client asked for (subscribe). */
  read?: ReadFlag | undefined;
  write?: WriteFlag | undefined;
  /** The owner and version, when the client learnt them (HTTP answers). */
  owner?: string | undefined;
  version?: number | undefined;
  /** Highest relay sequence number received (encrypted docs) or acknowledged. */
  lastServerSeq: number;
  /** Local seqs of `Local` entries the relay has acknowledged (pruned by compaction). */
  acked: number[];
  /** Entries appended on the relay since this client's last snapshot upload (encrypted docs). */
  relayEntriesSinceSnapshot?: number | undefined;
  /**
   * Set (durably, before the entry) by the first local edit of a session; cleared once a
   * closing handle has nothing left to send. A superset of the docs with unsent edits: the
   * client finds them on its next socket without reading every doc's log (unsent-edits.ts).
   */
  unsent?: boolean | undefined;
  /**
   * Written with the unsent mark of an end-to-end encrypted doc: a blob's mode is not in its
   * name, and the doc opened to send those edits must be opened encrypted.
   */
  encrypted?: boolean | undefined;
}

/** Turns a document's stored payloads into Yjs updates and back (identity, or a DocCipher). */
export interface PayloadCodec {
  /** The Yjs update inside a payload. */
  toUpdate(payload: Uint8Array): Promise<Uint8Array>;
  /** The payload that stores (and sends) a local Yjs update. */
  fromUpdate(update: Uint8Array): Promise<Uint8Array>;
  /** The payload that stores a merged state (compaction). */
  snapshot(state: Uint8Array): Promise<Uint8Array>;
}

/** The identity codec of plaintext documents. */
export const PLAINTEXT_CODEC: PayloadCodec = {
  toUpdate: async (payload) => payload,
  fromUpdate: async (update) => update,
  snapshot: async (state) => state,
};

interface EntryInfo {
  readonly seq: number;
  readonly tag: EntryTag;
  readonly serverSeq: number;
}

/** What {@link LocalDocLog.compact} did. */
export interface CompactResult {
  /** Pending entries up to this seq were merged into a new pending entry: forget their in-flight refs. */
  readonly pendingMergedThrough?: number;
}

/**
 * One document's log in the local {@link DocStore} plus its {@link DocMeta} record. All
 * operations run one at a time in call order, so appends, acknowledgements and compaction
 * never interleave.
 */
export class LocalDocLog {
  readonly name: string;
  readonly #docs: DocStore;
  readonly #kv: KeyValueStore;
  readonly #codec: PayloadCodec;
  readonly #compactAfter: number;
  readonly #encrypted: boolean;
  readonly #queue = new SerialQueue();
  #entries: EntryInfo[] = [];
  #acked = new Set<number>();
  #meta: DocMeta;

  /** `encrypted`: the doc syncs end-to-end encrypted (recorded with its unsent mark). */
  constructor(
    docs: DocStore,
    kv: KeyValueStore,
    name: string,
    codec: PayloadCodec,
    compactAfter: number,
    encrypted = false,
  ) {
    this.name = name;
    this.#docs = docs;
    this.#kv = kv;
    this.#codec = codec;
    this.#compactAfter = Math.max(2, compactAfter);
    this.#encrypted = encrypted;
    this.#meta = { name, lastServerSeq: 0, acked: [] };
  }

  /** The metadata as last loaded or changed (a live object: change it through {@link updateMeta}). */
  get meta(): Readonly<DocMeta> {
    return this.#meta;
  }

  /** Number of entries in the log. */
  get size(): number {
    return this.#entries.length;
  }

  /** Local seqs still in the outbox. */
  pendingSeqs(): number[] {
    return this.#entries.filter((e) => e.tag === EntryTag.Local && !this.#acked.has(e.seq)).map((e) => e.seq);
  }

  /** Number of local edits the relay has not acknowledged. */
  get pendingCount(): number {
    let n = 0;
    for (const e of this.#entries) if (e.tag === EntryTag.Local && !this.#acked.has(e.seq)) n++;
    return n;
  }

  /** Resolves once every queued operation has finished. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  /**
   * Loads metadata and entries, compacting a long log first. Resolves with the Yjs updates
   * of the whole document (possibly none). Loading never writes an entry: the log does not
   * grow on reload (the y-indexeddb #31 failure).
   */
  load(): Promise<Uint8Array[]> {
    return this.#queue.run(async () => {
      // Both reads at once: on IndexedDB they share one batched read transaction, so a page
      // opening many docs does not queue each doc's entries behind every other doc's record.
      const [meta, rows] = await Promise.all([
        this.#kv.get<DocMeta>(KV_TABLES.docs, this.name),
        this.#docs.load(this.name),
      ]);
      if (meta)
        this.#meta = {
          ...meta,
          name: this.name,
          acked: meta.acked ?? [],
          lastServerSeq: meta.lastServerSeq ?? 0,
        };
      const stored = rows.map((e) => decodeEntry(e.seq, e.data));
      this.#entries = stored.map(({ seq, tag, serverSeq }) => ({ seq, tag, serverSeq }));
      this.#acked = new Set(this.#meta.acked.filter((s) => this.#entries.some((e) => e.seq === s)));
      const derived = Math.max(0, ...stored.filter((e) => e.tag !== EntryTag.Local).map((e) => e.serverSeq));
      if (derived > this.#meta.lastServerSeq) this.#meta.lastServerSeq = derived;
      if (this.#entries.length > this.#compactAfter) await this.#compact();
      const entries = this.#entries.length === stored.length ? stored : await this.#loadEntries();
      return Promise.all(entries.map((e) => this.#codec.toUpdate(e.payload)));
    });
  }

  /** Stores a local edit in the log and so in the outbox. Resolves with its seq and payload once durable. */
  appendLocal(update: Uint8Array): Promise<{ seq: number; payload: Uint8Array }> {
    return this.#queue.run(async () => {
      const payload = await this.#codec.fromUpdate(update);
      if (this.#meta.unsent !== true) {
        // The mark first: a crash between the two writes leaves a mark too many, never an edit
        // nobody looks for.
        this.#meta.unsent = true;
        if (this.#encrypted) this.#meta.encrypted = true;
        await this.#saveMeta();
      }
      const seq = await this.#docs.append(this.name, encodeEntry(EntryTag.Local, 0, payload));
      this.#entries.push({ seq, tag: EntryTag.Local, serverSeq: 0 });
      return { seq, payload };
    });
  }

  /** Stores data received from the relay (a Yjs update, or an envelope with its relay seq). */
  appendRemote(payload: Uint8Array, serverSeq = 0): Promise<void> {
    return this.#queue.run(async () => {
      const seq = await this.#docs.append(this.name, encodeEntry(EntryTag.Remote, serverSeq, payload));
      this.#entries.push({ seq, tag: EntryTag.Remote, serverSeq });
      if (serverSeq > this.#meta.lastServerSeq) {
        this.#meta.lastServerSeq = serverSeq;
        await this.#saveMeta();
      }
    });
  }

  /** Marks local entries as acknowledged by the relay: they leave the outbox. */
  markAcked(seqs: readonly number[], serverSeq = 0): Promise<void> {
    return this.#queue.run(async () => {
      const live = seqs.filter((s) => this.#entries.some((e) => e.seq === s));
      if (live.length === 0) return;
      for (const s of live) this.#acked.add(s);
      if (serverSeq > 0)
        this.#meta.relayEntriesSinceSnapshot = (this.#meta.relayEntriesSinceSnapshot ?? 0) + 1;
      await this.#saveMeta();
    });
  }

  /**
   * Changes metadata fields and stores them; a change that leaves every field as it was stores
   * nothing (every grant on every reconnect says the same access again: on IndexedDB that was a
   * durable write transaction per doc before its sync could go on).
   */
  updateMeta(change: Partial<Omit<DocMeta, 'name' | 'acked'>>): Promise<void> {
    return this.#queue.run(async () => {
      const current = this.#meta;
      const fields = Object.keys(change) as Array<keyof typeof change>;
      if (fields.every((field) => current[field] === change[field])) return;
      Object.assign(this.#meta, change);
      await this.#saveMeta();
    });
  }

  /** Clears the {@link DocMeta.unsent} mark when the relay has every local edit; else keeps it. */
  clearUnsentIfSettled(): Promise<void> {
    return this.#queue.run(async () => {
      if (this.#meta.unsent !== true || this.pendingCount > 0) return;
      this.#meta.unsent = false;
      await this.#saveMeta();
    });
  }

  /** The outbox: every unacknowledged local entry with its payload, in seq order. */
  loadPending(): Promise<LogEntry[]> {
    return this.#queue.run(async () => {
      const pending = new Set(this.pendingSeqs());
      if (pending.size === 0) return [];
      return (await this.#loadEntries()).filter((e) => pending.has(e.seq));
    });
  }

  /** Compacts the log when it has grown past the threshold. */
  compactIfNeeded(): Promise<CompactResult> {
    return this.#queue.run(async () => (this.#entries.length > this.#compactAfter ? this.#compact() : {}));
  }

  /**
   * Merges the settled prefix into one snapshot once it holds {@link SETTLED_MERGE_ON_LOAD}
   * entries or more, well before the size threshold. Meant for right after a load: the doc's
   * entries were just read anyway, so the next start of the page reads one row and applies one
   * update instead of one per edit. Not after every edit: the merge re-encodes the whole doc.
   */
  compactSettled(): Promise<CompactResult> {
    return this.#queue.run(async () => {
      let prefix = 0;
      while (prefix < this.#entries.length && this.#settled(this.#entries[prefix] as LogEntry)) prefix++;
      return prefix >= SETTLED_MERGE_ON_LOAD ? this.#compact() : {};
    });
  }

  /**
   * Replaces the log by one snapshot of what the relay has confirmed (remote, snapshot and
   * acknowledged entries), dropping unacknowledged edits when `dropPending`. Resolves with the
   * Yjs updates the document now consists of.
   */
  reset(dropPending: boolean): Promise<Uint8Array[]> {
    return this.#queue.run(async () => {
      const entries = await this.#loadEntries();
      const kept = dropPending ? entries.filter((e) => this.#settled(e)) : entries;
      const updates = await Promise.all(kept.map((e) => this.#codec.toUpdate(e.payload)));
      if (!dropPending || entries.length === 0) return updates;
      const head = entries[entries.length - 1] as LogEntry;
      const serverSeq = Math.max(0, ...kept.map((e) => e.serverSeq));
      if (kept.length === 0) {
        await this.#docs.remove(this.name);
        this.#entries = [];
      } else {
        const state = Y.mergeUpdates(updates);
        const payload = await this.#codec.snapshot(state);
        await this.#docs.compact(this.name, head.seq, encodeEntry(EntryTag.Snapshot, serverSeq, payload));
        this.#entries = [{ seq: head.seq, tag: EntryTag.Snapshot, serverSeq }];
      }
      this.#acked.clear();
      await this.#saveMeta();
      return updates;
    });
  }

  /**
   * True when the log holds anything the relay confirmed (a remote entry, an acked edit, a
   * snapshot of those): false when everything in it is this device's own unsent work.
   */
  holdsConfirmed(): boolean {
    return this.#entries.some((e) => this.#settled(e));
  }

  /** Removes the document's entries and metadata from the device. */
  purge(): Promise<void> {
    return this.#queue.run(async () => {
      await this.#docs.remove(this.name);
      await this.#kv.delete(KV_TABLES.docs, this.name);
      this.#entries = [];
      this.#acked.clear();
      this.#meta = { name: this.name, lastServerSeq: 0, acked: [] };
    });
  }

  #settled(e: { seq: number; tag: EntryTag }): boolean {
    return e.tag !== EntryTag.Local || this.#acked.has(e.seq);
  }

  async #loadEntries(): Promise<LogEntry[]> {
    return (await this.#docs.load(this.name)).map((e) => decodeEntry(e.seq, e.data));
  }

  /**
   * Merges the longest prefix of settled entries into one snapshot. If that still leaves the
   * log past the threshold (a long offline session: many pending edits), merges everything
   * into one pending entry — re-sending confirmed data is harmless, Yjs updates are idempotent.
   */
  async #compact(): Promise<CompactResult> {
    let entries = await this.#loadEntries();
    let prefix = 0;
    while (prefix < entries.length && this.#settled(entries[prefix] as LogEntry)) prefix++;
    if (prefix >= 2) {
      const merged = entries.slice(0, prefix);
      const last = merged[merged.length - 1] as LogEntry;
      const serverSeq = Math.max(0, ...merged.map((e) => e.serverSeq));
      const state = Y.mergeUpdates(await Promise.all(merged.map((e) => this.#codec.toUpdate(e.payload))));
      const payload = await this.#codec.snapshot(state);
      await this.#docs.compact(this.name, last.seq, encodeEntry(EntryTag.Snapshot, serverSeq, payload));
      for (const e of merged) this.#acked.delete(e.seq);
      entries = [{ seq: last.seq, tag: EntryTag.Snapshot, serverSeq, payload }, ...entries.slice(prefix)];
    }
    let result: CompactResult = {};
    if (entries.length > this.#compactAfter) {
      const last = entries[entries.length - 1] as LogEntry;
      const state = Y.mergeUpdates(await Promise.all(entries.map((e) => this.#codec.toUpdate(e.payload))));
      const payload = await this.#codec.fromUpdate(state);
      await this.#docs.compact(this.name, last.seq, encodeEntry(EntryTag.Local, 0, payload));
      const serverSeq = Math.max(0, ...entries.map((e) => e.serverSeq));
      if (serverSeq > this.#meta.lastServerSeq) this.#meta.lastServerSeq = serverSeq;
      this.#acked.clear();
      entries = [{ seq: last.seq, tag: EntryTag.Local, serverSeq: 0, payload }];
      result = { pendingMergedThrough: last.seq };
    }
    this.#entries = entries.map(({ seq, tag, serverSeq }) => ({ seq, tag, serverSeq }));
    await this.#saveMeta();
    return result;
  }

  async #saveMeta(): Promise<void> {
    this.#meta.acked = [...this.#acked].sort((a, b) => a - b);
    await this.#kv.put(KV_TABLES.docs, this.name, { ...this.#meta });
  }
}
