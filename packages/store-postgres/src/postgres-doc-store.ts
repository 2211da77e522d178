import type { AppendItem, DocStore, StoredEntry } from '@scopesync/core';
import { SyncError } from '@scopesync/core';
import { boundedQuery } from './bounded-query.ts';
import { PostgresHandle, type PostgresStoreOptions } from './postgres-handle.ts';
import { toSafeInteger } from './postgres-pool.ts';

/** Options of {@link PostgresDocStore}: where the data lives; every other field has a default. */
export interface PostgresDocStoreOptions extends PostgresStoreOptions {
  /**
   * How long an append (a commit writers wait on) may take before it fails with Unavailable
   * and its backend is terminated, so that it cannot commit later, in ms. Default 10,000.
   */
  readonly commitTimeoutMs?: number;
}

const DEFAULT_COMMIT_TIMEOUT_MS = 10_000;

interface Sql {
  readonly append: string;
  readonly load: string;
  readonly loadLimited: string;
  readonly head: string;
  readonly heads: string;
  readonly lockHead: string;
  readonly entryExists: string;
  readonly deleteBefore: string;
  readonly replace: string;
  readonly remove: string;
  readonly docs: string;
}

function statements(s: string): Sql {
  return {
    // One statement for any batch, so one round trip and one implicit transaction:
    // 1. count the items per document and raise each document's head by its count, in document
    //    order (every appender locks heads in the same order, so two batches cannot deadlock);
    //    the upsert keeps each head row locked until commit, so a later seq commits later;
    // 2. give the items of a document the seqs from old head + 1 up, in item order.
    append: `
      WITH items AS (
        SELECT doc COLLATE "C" AS doc, data, ord
        FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS i (doc, data, ord)
      ),
      counts AS (
        SELECT doc, count(*) AS n FROM items GROUP BY doc ORDER BY doc
      ),
      heads AS (
        INSERT INTO ${s}.doc_heads AS h (doc, seq)
        SELECT doc, n FROM counts ORDER BY doc
        ON CONFLICT (doc) DO UPDATE SET seq = h.seq + excluded.seq
        RETURNING doc, seq
      ),
      numbered AS (
        SELECT i.doc, i.data, i.ord,
               heads.seq - counts.n + row_number() OVER (PARTITION BY i.doc ORDER BY i.ord) AS seq
        FROM items i JOIN counts USING (doc) JOIN heads USING (doc)
      ),
      inserted AS (
        INSERT INTO ${s}.doc_entries (doc, seq, data)
        SELECT doc, seq, data FROM numbered
        RETURNING doc, seq
      )
      SELECT numbered.seq FROM numbered JOIN inserted USING (doc, seq) ORDER BY numbered.ord`,
    load: `SELECT seq, data FROM ${s}.doc_entries WHERE doc = $1 AND seq > $2 ORDER BY seq`,
    loadLimited: `SELECT seq, data FROM ${s}.doc_entries WHERE doc = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
    head: `SELECT seq FROM ${s}.doc_heads WHERE doc = $1`,
    heads: `SELECT doc, seq FROM ${s}.doc_heads WHERE doc = ANY($1::text[])`,
    // Compaction and removal lock the head row first: they wait for appends in flight and make
    // each other wait, always in the order head row, then entries (no deadlock).
    lockHead: `SELECT seq FROM ${s}.doc_heads WHERE doc = $1 FOR UPDATE`,
    entryExists: `SELECT 1 FROM ${s}.doc_entries WHERE doc = $1 AND seq = $2`,
    deleteBefore: `DELETE FROM ${s}.doc_entries WHERE doc = $1 AND seq < $2`,
    replace: `UPDATE ${s}.doc_entries SET data = $3 WHERE doc = $1 AND seq = $2`,
    remove: `DELETE FROM ${s}.doc_entries WHERE doc = $1`,
    // Heads outnumber nothing that matters here, and unlike DISTINCT over the entries this
    // reads one index probe per document instead of every entry.
    docs: `
      SELECT h.doc FROM ${s}.doc_heads h
      WHERE h.doc >= $1 AND starts_with(h.doc, $1)
        AND EXISTS (SELECT 1 FROM ${s}.doc_entries e WHERE e.doc = h.doc)`,
  };
}

/**
 * A {@link DocStore} in PostgreSQL that several relays share. A document's seqs come from a
 * counter row locked until commit, so seq order is commit order: a reader polling
 * `load(doc, lastSeq)` never skips an entry that commits late. Every append, batch,
 * compaction and removal is one transaction, committed before its promise resolves.
 */
export class PostgresDocStore implements DocStore {
  readonly #handle: PostgresHandle;
  readonly #sql: Sql;
  readonly #commitTimeoutMs: number;

  private constructor(handle: PostgresHandle, commitTimeoutMs: number) {
    this.#handle = handle;
    this.#sql = statements(handle.schema);
    this.#commitTimeoutMs = commitTimeoutMs;
  }

  /**
   * Connects (or takes `options.pool`), creates and migrates the schema, and resolves with the
   * store. Unavailable when PostgreSQL cannot be reached; BadRequest for bad options.
   */
  static async open(options: PostgresDocStoreOptions): Promise<PostgresDocStore> {
    const commitTimeoutMs = options.commitTimeoutMs ?? DEFAULT_COMMIT_TIMEOUT_MS;
    if (!(commitTimeoutMs > 0) || !Number.isFinite(commitTimeoutMs)) {
      throw new SyncError(
        'BadRequest',
        `commitTimeoutMs must be a positive number, got ${String(commitTimeoutMs)}`,
      );
    }
    return new PostgresDocStore(await PostgresHandle.open(options, 'the store is closed'), commitTimeoutMs);
  }

  async append(doc: string, data: Uint8Array): Promise<number> {
    const [seq] = await this.appendBatch([{ doc, data }]);
    return seq as number;
  }

  async appendBatch(items: readonly AppendItem[]): Promise<number[]> {
    this.#handle.checkOpen();
    if (!Array.isArray(items)) throw new SyncError('BadRequest', 'appendBatch takes an array of items');
    for (const item of items) {
      checkDoc(item?.doc);
      checkBytes(item.data, 'data');
    }
    if (items.length === 0) return [];
    // Copied now: the caller may reuse its buffers before the query is sent.
    const docs = items.map((i) => i.doc);
    const data = items.map((i) => Buffer.from(i.data));
    // Bounded: a backend that stopped answering must not hold every writer forever.
    const rows = await this.#handle.run('cannot append to the document log', async () => {
      const pool = this.#handle.pool;
      return (
        await boundedQuery<{ seq: bigint }>(pool, this.#sql.append, [docs, data], this.#commitTimeoutMs)
      ).rows;
    });
    if (rows.length !== items.length) {
      throw new SyncError('Internal', `appended ${items.length} entries but got ${rows.length} seqs`);
    }
    return rows.map((r) => toSafeInteger(r.seq, 'seq'));
  }

  /**
   * The entries with `seq > sinceSeq` (default: all) in seq order; at most `limit` of them when
   * given (a page: load again from the last seq for the next one).
   */
  async load(doc: string, sinceSeq = 0, limit?: number): Promise<StoredEntry[]> {
    this.#handle.checkOpen();
    checkDoc(doc);
    if (typeof sinceSeq !== 'number' || Number.isNaN(sinceSeq)) {
      throw new SyncError('BadRequest', `sinceSeq must be a number, got ${String(sinceSeq)}`);
    }
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new SyncError('BadRequest', `limit must be a non-negative integer, got ${String(limit)}`);
    }
    if (limit === 0) return [];
    // seq is int8: clamp so that ±Infinity and fractions compare as the contract says.
    const since = Math.min(Math.max(sinceSeq, 0), Number.MAX_SAFE_INTEGER);
    const rows = await this.#handle.run('cannot load the document log', async (q) => {
      const query = limit === undefined ? this.#sql.load : this.#sql.loadLimited;
      const values = limit === undefined ? [doc, Math.floor(since)] : [doc, Math.floor(since), limit];
      return (await q.query<{ seq: bigint; data: Buffer }>(query, values)).rows;
    });
    return rows.map(({ seq, data }) => ({
      seq: toSafeInteger(seq, 'seq'),
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    }));
  }

  async head(doc: string): Promise<number> {
    this.#handle.checkOpen();
    checkDoc(doc);
    const rows = await this.#handle.run('cannot read the head of the document log', async (q) => {
      return (await q.query<{ seq: bigint }>(this.#sql.head, [doc])).rows;
    });
    return rows[0] === undefined ? 0 : toSafeInteger(rows[0].seq, 'seq');
  }

  async heads(docs: readonly string[]): Promise<Map<string, number>> {
    this.#handle.checkOpen();
    for (const doc of docs) checkDoc(doc);
    const heads = new Map<string, number>(docs.map((doc) => [doc, 0]));
    if (docs.length === 0) return heads;
    const rows = await this.#handle.run('cannot read the heads of the document logs', async (q) => {
      return (await q.query<{ doc: string; seq: bigint }>(this.#sql.heads, [docs])).rows;
    });
    for (const row of rows) heads.set(row.doc, toSafeInteger(row.seq, 'seq'));
    return heads;
  }

  async compact(doc: string, throughSeq: number, snapshot: Uint8Array): Promise<void> {
    this.#handle.checkOpen();
    checkDoc(doc);
    checkBytes(snapshot, 'snapshot');
    const conflict = () =>
      new SyncError('Conflict', `no entry ${String(throughSeq)} to compact through in ${doc}`);
    if (!Number.isSafeInteger(throughSeq) || throughSeq < 1) throw conflict();
    const data = Buffer.from(snapshot);
    await this.#handle.transaction('cannot compact the document log', async (client) => {
      // Waits for appends in flight and for another compactor of this document, on any relay.
      const head = await client.query(this.#sql.lockHead, [doc]);
      if (head.rowCount === 0) throw conflict();
      // Read after the lock: a compaction that committed meanwhile has removed what it covered.
      const exists = await client.query(this.#sql.entryExists, [doc, throughSeq]);
      if (exists.rowCount === 0) throw conflict();
      await client.query(this.#sql.deleteBefore, [doc, throughSeq]);
      await client.query(this.#sql.replace, [doc, throughSeq, data]);
    });
  }

  async remove(doc: string): Promise<void> {
    this.#handle.checkOpen();
    checkDoc(doc);
    await this.#handle.transaction('cannot remove the document log', async (client) => {
      const head = await client.query(this.#sql.lockHead, [doc]);
      // The head row stays: its seq is what keeps numbers from being reused.
      if (head.rowCount !== 0) await client.query(this.#sql.remove, [doc]);
    });
  }

  async docs(prefix = ''): Promise<string[]> {
    this.#handle.checkOpen();
    if (typeof prefix !== 'string') throw new SyncError('BadRequest', 'prefix must be a string');
    const rows = await this.#handle.run('cannot list the document logs', async (q) => {
      return (await q.query<{ doc: string }>(this.#sql.docs, [prefix])).rows;
    });
    // JavaScript's order (UTF-16 code units) differs from byte order above the BMP.
    return rows.map((r) => r.doc).sort();
  }

  /** Ends the pool if the store opened it. Idempotent; later calls reject with Unavailable. */
  async close(): Promise<void> {
    await this.#handle.close();
  }
}

function checkDoc(doc: unknown): asserts doc is string {
  if (typeof doc !== 'string') {
    throw new SyncError('BadRequest', `a document name must be a string, got ${typeof doc}`);
  }
}

function checkBytes(data: unknown, what: string): asserts data is Uint8Array {
  if (!(data instanceof Uint8Array)) {
    throw new SyncError(
      'BadRequest',
      `${what} must be a Uint8Array, got ${data === null ? 'null' : typeof data}`,
    );
  }
}
