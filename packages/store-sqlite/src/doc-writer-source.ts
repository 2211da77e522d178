import { APPEND_ENTRY_SQL, KEEP_HEAD_SQL, REMOVE_ENTRIES_SQL } from './doc-log-sql.ts';

/**
 * The body of the document store's writer thread, as plain CommonJS evaluated by
 * `new Worker(source, { eval: true })`: a file would have to exist both as TypeScript (source
 * runs under tsx and Vitest) and as built JavaScript, and a worker started from a `.ts` file
 * gets neither loader. It owns the write connection of one SQLite file and answers requests in
 * the order they come; each write is one transaction, committed — and at `synchronous = FULL`
 * fsynced, with SQLite's automatic checkpoint — on this thread, never on the caller's loop.
 *
 * workerData: { driver, path, synchronous, busyTimeoutMs, journalSizeLimit, cacheKiB }.
 * Requests: { id, op: 'append', items } | { id, op: 'compact', doc, throughSeq, snapshot } |
 * { id, op: 'remove', doc } | { id, op: 'checkpoint' } | { id, op: 'close' }. Answers: { id, ok: true, value } or
 * { id, ok: false, error: { message, code, kind, name } }.
 */
export const DOC_WRITER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { timeout: workerData.busyTimeoutMs });
// journal_mode and auto_vacuum live in the file (set by the store's own connection); the rest
// is per connection.
db.pragma('synchronous = ' + workerData.synchronous);
db.pragma('journal_size_limit = ' + workerData.journalSizeLimit);
db.pragma('foreign_keys = ON');
if (workerData.cacheKiB !== undefined) db.pragma('cache_size = -' + workerData.cacheKiB);
const appendEntry = db.prepare(${JSON.stringify(APPEND_ENTRY_SQL)}).pluck();
const keepHead = db.prepare(${JSON.stringify(KEEP_HEAD_SQL)});
const removeEntries = db.prepare(${JSON.stringify(REMOVE_ENTRIES_SQL)});
const exists = db.prepare('SELECT 1 FROM doc_entries WHERE doc = ? AND seq = ?').pluck();
const deleteThrough = db.prepare('DELETE FROM doc_entries WHERE doc = ? AND seq < ?');
const replace = db.prepare('UPDATE doc_entries SET data = ? WHERE doc = ? AND seq = ?');
const appendBatch = db.transaction((items) => items.map(({ doc, data }) => appendEntry.get({ doc, data })));
const remove = db.transaction((doc) => {
  keepHead.run({ doc });
  removeEntries.run({ doc });
});
const compact = db.transaction((doc, throughSeq, snapshot) => {
  if (exists.get(doc, throughSeq) === undefined) {
    const error = new Error('no entry ' + throughSeq + ' to compact through in ' + doc);
    error.kind = 'Conflict';
    throw error;
  }
  deleteThrough.run(doc, throughSeq);
  replace.run(snapshot, doc, throughSeq);
});
function handle(m) {
  switch (m.op) {
    case 'append':
      return appendBatch(m.items);
    case 'compact':
      compact(m.doc, m.throughSeq, m.snapshot);
      db.pragma('incremental_vacuum');
      return undefined;
    case 'remove':
      remove(m.doc);
      db.pragma('incremental_vacuum');
      return undefined;
    case 'checkpoint':
      // PASSIVE: copies what it can without waiting for readers or blocking the writer.
      return db.pragma('wal_checkpoint(PASSIVE)')[0];
    default:
      throw new Error('unknown request ' + String(m.op));
  }
}
parentPort.on('message', (m) => {
  if (m.op === 'close') {
    db.close();
    parentPort.postMessage({ id: m.id, ok: true });
    parentPort.close();
    return;
  }
  try {
    parentPort.postMessage({ id: m.id, ok: true, value: handle(m) });
  } catch (error) {
    const e = error === null || typeof error !== 'object' ? { message: String(error) } : error;
    parentPort.postMessage({
      id: m.id,
      ok: false,
      error: { message: String(e.message), code: e.code, kind: e.kind, name: e.name },
    });
  }
});
`;
