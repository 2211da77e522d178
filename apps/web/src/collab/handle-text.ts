import type { DocHandle } from '@scopesync/client';
import type * as Y from 'yjs';
import { TextareaBinding } from './text-binding.ts';

/**
 * Binds a `Y.Text` of a synced document to a textarea and keeps it bound when the handle
 * rebuilds its doc (the 'reset' event after the relay refused an edit). Returns the function
 * that unbinds; `onBind` runs with each new Y.Text (to attach cursors to it).
 */
export function bindHandleText(
  handle: DocHandle,
  textarea: HTMLTextAreaElement,
  field = 'text',
  onBind?: (text: Y.Text) => void,
): () => void {
  let binding: TextareaBinding | undefined;
  const bind = () => {
    binding?.close();
    const text = handle.doc.getText(field);
    binding = new TextareaBinding(text, textarea);
    onBind?.(text);
  };
  const stopReset = handle.on('reset', bind);
  void handle.whenLoaded.then(() => {
    if (!handle.closed) bind();
  });
  return () => {
    stopReset();
    binding?.close();
  };
}
