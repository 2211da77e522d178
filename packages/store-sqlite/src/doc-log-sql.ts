/**
 * The document log's SQL that both of the store's connections run: its own (on the caller's
 * loop) and the writer thread's (`doc-writer-source.ts`, which gets these strings interpolated,
 * since a thread evaluated from source cannot import them). One place, so the two never assign
 * sequence numbers differently.
 *
 * A document's head — the highest seq ever assigned to it — is the larger of its newest entry
 * and its `doc_heads` row. That row is written only when the entries are removed: compaction
 * always keeps the newest entry, so an append needs no second row to keep seqs from being
 * reused, and a commit writes one B-tree's pages fewer (half the CPU and a third less log per
 * single-update commit: bench/results-history.md, "One row written per append"). Files written by
 * earlier versions, whose `doc_heads` moved with every append, read the same under this rule.
 */

/** The head of the document `@doc`, as an SQL expression (0 for a document never written). */
const HEAD = `max(
  coalesce((SELECT max(seq) FROM doc_entries WHERE doc = @doc), 0),
  coalesce((SELECT seq FROM doc_heads WHERE doc = @doc), 0)
)`;

/**
 * Appends `@data` to `@doc` under the next seq, returning it. One statement, so the head it
 * reads and the row it adds fall under the same write lock.
 */
export const APPEND_ENTRY_SQL = `INSERT INTO doc_entries (doc, seq, data) VALUES (@doc, ${HEAD} + 1, @data) RETURNING seq`;

/** Reads the head of `@doc`. */
export const READ_HEAD_SQL = `SELECT ${HEAD}`;

/** Keeps the head of `@doc` in `doc_heads`: run before its entries are removed. */
export const KEEP_HEAD_SQL = `INSERT INTO doc_heads (doc, seq) VALUES (@doc, ${HEAD})
  ON CONFLICT (doc) DO UPDATE SET seq = excluded.seq`;

/** Removes every entry of `@doc` (after {@link KEEP_HEAD_SQL}, in the same transaction). */
export const REMOVE_ENTRIES_SQL = 'DELETE FROM doc_entries WHERE doc = @doc';
