import type { DocHandle } from '@scopesync/client';

/**
 * Calls `listener` after every change of the handle's document — local edits, remote
 * updates, and the rebuild after a refused edit ('reset', which swaps the Y.Doc) — and once
 * when it has loaded. Returns the function that stops listening.
 */
export function onDocChange(handle: DocHandle, listener: () => void): () => void {
  let doc = handle.doc;
  const onUpdate = () => listener();
  doc.on('update', onUpdate);
  const stopReset = handle.on('reset', ({ doc: fresh }) => {
    doc.off('update', onUpdate);
    doc = fresh;
    doc.on('update', onUpdate);
    listener();
  });
  let stopped = false;
  void handle.whenLoaded.then(
    () => {
      if (!stopped) listener();
    },
    () => undefined,
  );
  return () => {
    stopped = true;
    stopReset();
    doc.off('update', onUpdate);
  };
}
