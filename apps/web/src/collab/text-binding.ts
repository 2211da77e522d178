import type * as Y from 'yjs';

/** Marks transactions made by a binding, so it does not re-apply its own edits. */
const LOCAL_ORIGIN = Symbol('textarea-binding');

/**
 * Keeps a `<textarea>` and a `Y.Text` equal in both directions. Local typing becomes the
 * smallest insert/delete that explains it (so concurrent edits elsewhere in the text merge
 * instead of overwriting each other); remote changes update the textarea while keeping the
 * local caret where it was in the text, not where it was in characters.
 */
export class TextareaBinding {
  readonly #text: Y.Text;
  readonly #textarea: HTMLTextAreaElement;
  readonly #onInput = () => this.#applyLocal();
  readonly #onRemote = (event: Y.YTextEvent, transaction: Y.Transaction) => {
    if (transaction.origin !== LOCAL_ORIGIN) this.#applyRemote(event.delta);
  };
  #closed = false;

  constructor(text: Y.Text, textarea: HTMLTextAreaElement) {
    this.#text = text;
    this.#textarea = textarea;
    textarea.value = text.toString();
    textarea.addEventListener('input', this.#onInput);
    text.observe(this.#onRemote);
  }

  /** Stops syncing; the textarea keeps its current content. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#textarea.removeEventListener('input', this.#onInput);
    this.#text.unobserve(this.#onRemote);
  }

  #applyLocal(): void {
    const before = this.#text.toString();
    const after = this.#textarea.value;
    if (before === after) return;
    const { start, deleteCount, insert } = diff(before, after);
    this.#text.doc?.transact(() => {
      if (deleteCount > 0) this.#text.delete(start, deleteCount);
      if (insert) this.#text.insert(start, insert);
    }, LOCAL_ORIGIN);
  }

  #applyRemote(delta: Y.YTextEvent['delta']): void {
    const textarea = this.#textarea;
    const next = this.#text.toString();
    if (textarea.value === next) return;
    // Setting `value` moves the caret to the end; carry the selection across the change
    // instead, so someone typing elsewhere in the text does not disturb my caret.
    const focused = document.activeElement === textarea;
    const start = transformIndex(textarea.selectionStart, delta);
    const end = transformIndex(textarea.selectionEnd, delta);
    textarea.value = next;
    if (focused) textarea.setSelectionRange(start, end);
  }
}

/** Where a position of the old text is after the change `delta` (a Yjs text delta). */
export function transformIndex(index: number, delta: Y.YTextEvent['delta']): number {
  let oldPosition = 0;
  let result = index;
  for (const op of delta) {
    if (oldPosition >= index) break;
    if (op.retain !== undefined) oldPosition += op.retain;
    else if (op.insert !== undefined) result += typeof op.insert === 'string' ? op.insert.length : 1;
    else if (op.delete !== undefined) {
      result -= Math.min(op.delete, index - oldPosition);
      oldPosition += op.delete;
    }
  }
  return result;
}

/** The single replacement that turns `before` into `after`: common prefix and suffix kept. */
export function diff(before: string, after: string): { start: number; deleteCount: number; insert: string } {
  let start = 0;
  const shortest = Math.min(before.length, after.length);
  while (start < shortest && before.charCodeAt(start) === after.charCodeAt(start)) start++;
  let tail = 0;
  while (
    tail < shortest - start &&
    before.charCodeAt(before.length - 1 - tail) === after.charCodeAt(after.length - 1 - tail)
  ) {
    tail++;
  }
  return {
    start,
    deleteCount: before.length - start - tail,
    insert: after.slice(start, after.length - tail),
  };
}
