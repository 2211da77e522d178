/** One stored entry of a document's log: a Yjs update, or an encrypted envelope or snapshot. */
export interface StoredEntry {
  /** Strictly increasing per document for the life of the store, across compaction and removal. */
  readonly seq: number;
  readonly data: Uint8Array;
}

/** One append of a batch. */
export interface AppendItem {
  readonly doc: string;
  readonly data: Uint8Array;
}

/**
 * A store of per-document logs of opaque bytes. It never sees a Y.Doc, so the same store and
 * the same conformance suite (`runDocStoreSuite`) serve plaintext updates and ciphertext.
 * Every method resolves only once its effect is durable for that store.
 */
export interface DocStore {
  /** Appends one entry and resolves with its sequence number once it is durable. */
  append(doc: string, data: Uint8Array): Promise<number>;
  /** Appends several entries in one transaction: all are stored or none. Resolves with their sequence numbers in order. */
  appendBatch(items: readonly AppendItem[]): Promise<number[]>;
  /**
   * The entries of a document with `seq > sinceSeq` (default 0: all), in sequence order; at
   * most `limit` of them, the lowest seqs first (default: no limit). Paging: pass the last
   * seq of a page as the next `sinceSeq` until a page comes back shorter than `limit`.
   * BadRequest when `limit` is given and is not a non-negative integer (0 loads nothing).
   */
  load(doc: string, sinceSeq?: number, limit?: number): Promise<StoredEntry[]>;
  /** The highest sequence number ever assigned to the document, 0 if none. */
  head(doc: string): Promise<number>;
  /**
   * Optional: the heads of several documents in one read (0 for one without entries), for a
   * relay that compares every document it follows with the store (callers fall back to `head`
   * per document).
   */
  heads?(docs: readonly string[]): Promise<Map<string, number>>;
  /**
   * Atomically replaces every entry with `seq <= throughSeq` by one entry holding `snapshot`
   * at `seq = throughSeq`. Later entries stay. A crash leaves either the old entries or the
   * snapshot, never neither. Throws Conflict if `throughSeq` is not an existing entry's seq.
   */
  compact(doc: string, throughSeq: number, snapshot: Uint8Array): Promise<void>;
  /** Removes every entry of the document. Its sequence numbers are not reused. */
  remove(doc: string): Promise<void>;
  /** Names of documents holding at least one entry, optionally only those starting with `prefix`, sorted. */
  docs(prefix?: string): Promise<string[]>;
  /** Releases the store. Idempotent; later calls reject with Unavailable. */
  close(): Promise<void>;
}
