/**
 * The body of the relay's merge thread, as plain CommonJS evaluated by
 * `new Worker(source, { eval: true })`: a file would have to exist both as TypeScript (source
 * runs under tsx and Vitest) and as built JavaScript, and a worker started from a `.ts` file
 * gets neither loader (the document store's writer thread is built the same way).
 *
 * It merges a plaintext document's stored log into one update of the same content, as
 * `docFromLog` (yjs-log.ts) builds a document on the loop: every entry applied to a fresh
 * garbage-collecting Y.Doc in one transaction, unchecked; only when that throws, the doc is
 * built again entry by entry, leaving out the entries that do not decode as Yjs updates. A
 * garbage-collecting doc (as y-leveldb merges) shrinks deleted content to GC structs; pending
 * structs (updates whose dependencies never arrived) are kept by `encodeStateAsUpdate`.
 *
 * workerData: { yjs } (the path `require` loads Yjs from). Requests: { id, updates }. Answers:
 * { id, ok: true, update, skipped } (the update's buffer transferred) or { id, ok: false, message }.
 */
export const MERGE_THREAD_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const Y = require(workerData.yjs);
function build(updates, checked) {
  const doc = new Y.Doc({ gc: true, guid: 'merge' });
  let skipped = 0;
  try {
    doc.transact(() => {
      for (const update of updates) {
        if (checked) {
          try {
            Y.decodeUpdate(update);
          } catch {
            skipped += 1;
            continue;
          }
        }
        Y.applyUpdate(doc, update);
      }
    });
    return { update: Y.encodeStateAsUpdate(doc), skipped };
  } finally {
    doc.destroy();
  }
}
function merge(updates) {
  try {
    return build(updates, false);
  } catch {
    return build(updates, true);
  }
}
parentPort.on('message', (m) => {
  try {
    const { update, skipped } = merge(m.updates);
    const whole = update.byteOffset === 0 && update.byteLength === update.buffer.byteLength;
    parentPort.postMessage({ id: m.id, ok: true, update, skipped }, whole ? [update.buffer] : []);
  } catch (error) {
    parentPort.postMessage({ id: m.id, ok: false, message: String(error && error.message) });
  }
});
`;
