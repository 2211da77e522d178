import type { StoredEntry } from '@scopesync/core';

/** A row of the `entries` store holding one log entry: a document's update (or envelope). */
export interface PlainRow {
  readonly doc: string;
  readonly seq: number;
  readonly data: Uint8Array;
}

/**
 * A row of the `entries` store holding a run of small consecutive entries of one document:
 * `packed` is their bytes end to end, `seqs[i]` the seq of the i-th and `ends[i]` where its
 * bytes end; the row's own `seq` is the last of `seqs`. It has no `data`: code from before
 * packed rows, which reads `data` as one entry, fails on it ("corrupt entry") rather than
 * misreading the run as one entry and compacting the rest away.
 */
export interface PackedRow {
  readonly doc: string;
  readonly seq: number;
  readonly packed: Uint8Array;
  readonly seqs: readonly number[];
  readonly ends: readonly number[];
}

/**
 * One row of the `entries` store, keyed by `[doc, seq]`. Reading a document costs one row and
 * one structured clone per run of entries instead of one per entry, which was most of the
 * store's time in a cold start (fake-indexeddb, like a browser, pays per record: a tree walk
 * and a clone each). Keyed by the last seq, a range read from `[doc, sinceSeq]` (open) finds
 * every row that holds an entry after `sinceSeq`.
 */
export type EntryRow = PlainRow | PackedRow;

/**
 * Most bytes a packed row holds. Each append to a document rewrites its last packed row, so
 * this bounds the write amplification of a keystroke (a few KiB written for a 30-byte update,
 * not 16 as first built); a larger entry (a snapshot) stays a plain row of its own.
 */
export const PACK_MAX_BYTES = 4 * 1024;
/**
 * Most entries a packed row holds. The client compacts its log every 100 entries by default, so
 * a document's log is a handful of rows, not a hundred, while an append rewrites at most 32.
 */
export const PACK_MAX_ENTRIES = 32;

/** The entries a row holds, in seq order; packed entries are views into the row's bytes (no copy). */
export function unpack(row: EntryRow): StoredEntry[] {
  if (!('packed' in row)) return [{ seq: row.seq, data: row.data }];
  const { packed, seqs, ends } = row;
  const entries: StoredEntry[] = new Array(seqs.length);
  let start = 0;
  for (let i = 0; i < seqs.length; i++) {
    const end = ends[i] as number;
    entries[i] = { seq: seqs[i] as number, data: packed.subarray(start, end) };
    start = end;
  }
  return entries;
}

/** The entries `rows` hold (in key order), in seq order: {@link unpack} of each, end to end. */
export function unpackAll(rows: readonly EntryRow[]): StoredEntry[] {
  if (rows.length === 1) return unpack(rows[0] as EntryRow);
  const entries: StoredEntry[] = [];
  for (const row of rows) for (const entry of unpack(row)) entries.push(entry);
  return entries;
}

/**
 * Rows holding `entries` (one document's, in seq order): consecutive entries packed while a
 * row stays within {@link PACK_MAX_BYTES} and {@link PACK_MAX_ENTRIES}; an entry alone in its
 * row is a plain row. Packed bytes are copied into a buffer of the row's own; a plain row
 * keeps the entry's bytes as they are (the caller owns them).
 */
export function packRows(doc: string, entries: readonly StoredEntry[]): EntryRow[] {
  const rows: EntryRow[] = [];
  let run: StoredEntry[] = [];
  let bytes = 0;
  const flush = () => {
    if (run.length > 0) rows.push(rowOf(doc, run, bytes));
    run = [];
    bytes = 0;
  };
  for (const entry of entries) {
    if (run.length > 0 && !fits(run.length, bytes, entry)) flush();
    run.push(entry);
    bytes += entry.data.byteLength;
  }
  flush();
  return rows;
}

/**
 * True when `entry` may join the run of `count` entries and `bytes` bytes that `row` holds:
 * appends extend a document's last row while this holds.
 */
export function canExtend(row: EntryRow, entry: StoredEntry): boolean {
  return 'packed' in row
    ? fits(row.seqs.length, row.packed.byteLength, entry)
    : fits(1, row.data.byteLength, entry);
}

function fits(count: number, bytes: number, entry: StoredEntry): boolean {
  return count < PACK_MAX_ENTRIES && bytes + entry.data.byteLength <= PACK_MAX_BYTES;
}

function rowOf(doc: string, run: readonly StoredEntry[], bytes: number): EntryRow {
  const last = run[run.length - 1] as StoredEntry;
  // A view (an entry of a packed row) is copied: structured clone would store its whole buffer.
  if (run.length === 1) return { doc, seq: last.seq, data: ownBytes(last.data) };
  const packed = new Uint8Array(bytes);
  const seqs: number[] = [];
  const ends: number[] = [];
  let end = 0;
  for (const entry of run) {
    packed.set(entry.data, end);
    end += entry.data.byteLength;
    seqs.push(entry.seq);
    ends.push(end);
  }
  return { doc, seq: last.seq, packed, seqs, ends };
}

function ownBytes(data: Uint8Array): Uint8Array {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
}
