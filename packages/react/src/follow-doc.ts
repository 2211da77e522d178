import type * as Y from 'yjs';

/** A handle or provider: its current doc, and the event telling that it was replaced. */
export interface DocSource {
  readonly doc: Y.Doc;
  on(event: 'reset', listener: (value: { readonly doc: Y.Doc }) => void): () => void;
}

/**
 * Calls `onChange` after every change of `source`'s doc — local edits, remote updates — and
 * when the doc is replaced ('reset' after a refused edit), following the new doc from then on.
 * Returns the function that stops it.
 */
export function followDoc(source: DocSource, onChange: () => void): () => void {
  let doc = source.doc;
  const onUpdate = () => onChange();
  doc.on('update', onUpdate);
  const stopReset = source.on('reset', ({ doc: fresh }) => {
    doc.off('update', onUpdate);
    doc = fresh;
    doc.on('update', onUpdate);
    onChange();
  });
  return () => {
    stopReset();
    doc.off('update', onUpdate);
  };
}
