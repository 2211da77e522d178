import type { Awareness } from 'y-protocols/awareness';
import * as Y from 'yjs';
import { h } from '../ui/dom.ts';
import { caretCoordinates } from './caret-coordinates.ts';

/** Who a collaborator is, as shown next to their cursor. */
export interface CursorUser {
  readonly name: string;
  readonly color: string;
}

/** The awareness fields this module reads and writes (the y-codemirror / y-quill convention). */
interface CursorState {
  readonly user?: CursorUser;
  readonly cursor?: { readonly anchor: unknown; readonly head: unknown } | null;
}

/**
 * Live cursors in a textarea: publishes my caret through awareness and draws everyone
 * else's caret with their name on `layer` (an element laid exactly over the textarea).
 * Carets are shared as Yjs relative positions, so they stay on the right character while
 * the text around them changes.
 */
export class RemoteCursors {
  readonly #awareness: Awareness;
  readonly #text: Y.Text;
  readonly #textarea: HTMLTextAreaElement;
  readonly #layer: HTMLElement;
  readonly #cleanups: (() => void)[] = [];

  constructor(
    awareness: Awareness,
    text: Y.Text,
    textarea: HTMLTextAreaElement,
    layer: HTMLElement,
    me: CursorUser,
  ) {
    this.#awareness = awareness;
    this.#text = text;
    this.#textarea = textarea;
    this.#layer = layer;
    awareness.setLocalStateField('user', me);

    const publish = () => this.#publish();
    const render = () => this.render();
    // `selectionchange` fires on the document for textareas in Chromium and Firefox; the
    // key and pointer events cover the rest.
    const onSelectionChange = () => {
      if (document.activeElement === textarea) publish();
    };
    document.addEventListener('selectionchange', onSelectionChange);
    for (const type of ['input', 'keyup', 'pointerup', 'focus'] as const)
      textarea.addEventListener(type, publish);
    const onBlur = () => awareness.setLocalStateField('cursor', null);
    textarea.addEventListener('blur', onBlur);
    textarea.addEventListener('scroll', render);
    awareness.on('change', render);
    text.observe(render);
    const resize = new ResizeObserver(render);
    resize.observe(textarea);
    this.#cleanups.push(
      () => document.removeEventListener('selectionchange', onSelectionChange),
      () => {
        for (const type of ['input', 'keyup', 'pointerup', 'focus'] as const) {
          textarea.removeEventListener(type, publish);
        }
      },
      () => textarea.removeEventListener('blur', onBlur),
      () => textarea.removeEventListener('scroll', render),
      () => awareness.off('change', render),
      () => text.unobserve(render),
      () => resize.disconnect(),
      () => awareness.setLocalStateField('cursor', null),
    );
  }

  /** Redraws every remote cursor. */
  render(): void {
    const ydoc = this.#text.doc;
    if (!ydoc) return;
    const carets: HTMLElement[] = [];
    for (const [clientId, raw] of this.#awareness.getStates()) {
      if (clientId === this.#awareness.clientID) continue;
      const state = raw as CursorState;
      if (!state.cursor || !state.user) continue;
      const head = Y.createAbsolutePositionFromRelativePosition(
        Y.createRelativePositionFromJSON(state.cursor.head),
        ydoc,
      );
      if (!head || head.type !== this.#text) continue;
      const point = caretCoordinates(this.#textarea, head.index);
      if (point.top < -point.height || point.top > this.#textarea.clientHeight) continue;
      carets.push(
        h(
          'div',
          {
            class: 'remote-caret',
            dataset: { testid: 'remote-caret' },
            style: `top:${point.top}px;left:${point.left}px;height:${point.height}px;--caret:${state.user.color}`,
          },
          h('span', { class: 'remote-caret-name' }, state.user.name),
        ),
      );
    }
    this.#layer.replaceChildren(...carets);
  }

  /** Stops publishing and drawing; my cursor disappears for the others. */
  close(): void {
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    this.#layer.replaceChildren();
  }

  #publish(): void {
    const { selectionStart, selectionEnd, selectionDirection } = this.#textarea;
    const [anchor, head] =
      selectionDirection === 'backward' ? [selectionEnd, selectionStart] : [selectionStart, selectionEnd];
    this.#awareness.setLocalStateField('cursor', {
      anchor: Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(this.#text, anchor)),
      head: Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(this.#text, head)),
    });
  }
}
