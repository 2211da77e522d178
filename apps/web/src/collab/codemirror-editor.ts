import { defaultKeymap } from '@codemirror/commands';
import { Compartment, EditorState, type Extension } from '@codemirror/state';
import { EditorView, keymap } from '@codemirror/view';
import type { DocProvider } from '@scopesync/client';
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next';

/** Who I am to the others: the name and colour next to my caret. */
export interface CursorUser {
  readonly name: string;
  readonly color: string;
  /** The colour of my selection as the others see it (a light version of `color`). */
  readonly colorLight: string;
}

/** What a {@link CodeMirrorEditor} edits and how it is labelled. */
export interface CodeMirrorEditorOptions {
  /** The `Y.Text` of the doc it edits. */
  readonly field: string;
  readonly me: CursorUser;
  /** Start read-only (until the relay says this client may write). */
  readonly readOnly: boolean;
  /** The accessible name of the text area. */
  readonly label: string;
  /** `data-testid` of the editable content. */
  readonly testId: string;
}

/**
 * A CodeMirror 6 editor on one `Y.Text` of a shared document, bound by y-codemirror.next to the
 * document's provider: typing becomes Yjs edits, the others' edits appear in place, and
 * everyone's caret and selection shows with their name and colour (awareness field `user`).
 * Read-only mode is CodeMirror's own (`EditorState.readOnly` and `EditorView.editable`).
 * `provider.bind` rebuilds the editor on the new doc and awareness when the client rebuilds the
 * doc after a refused edit, so my caret never turns into a stranger's.
 */
export class CodeMirrorEditor {
  /** The element the editor lives in. */
  readonly element: HTMLElement;
  readonly #editable = new Compartment();
  #readOnly: boolean;
  #view: EditorView | undefined;
  readonly #unbind: () => void;

  constructor(provider: DocProvider, options: CodeMirrorEditorOptions) {
    this.element = document.createElement('div');
    this.element.className = 'editor';
    this.#readOnly = options.readOnly;
    // Kept across rebuilds: DocPresence carries my local state to the new awareness.
    provider.awareness.setLocalStateField('user', options.me);
    this.#unbind = provider.bind(({ doc, awareness }) => {
      const text = doc.getText(options.field);
      const view = new EditorView({
        parent: this.element,
        state: EditorState.create({
          doc: text.toString(),
          extensions: [
            yCollab(text, awareness),
            // Undo is Yjs's UndoManager (it undoes only my edits), not CodeMirror's history.
            keymap.of([...yUndoManagerKeymap, ...defaultKeymap]),
            EditorView.lineWrapping,
            EditorView.contentAttributes.of({ 'aria-label': options.label, 'data-testid': options.testId }),
            this.#editable.of(editable(this.#readOnly)),
          ],
        }),
      });
      this.#view = view;
      return () => {
        if (this.#view === view) this.#view = undefined;
        view.destroy();
      };
    });
  }

  /** Makes the editor read-only (nothing can be typed) or editable again. */
  setReadOnly(readOnly: boolean): void {
    if (readOnly === this.#readOnly) return;
    this.#readOnly = readOnly;
    this.#view?.dispatch({ effects: this.#editable.reconfigure(editable(readOnly)) });
  }

  /** Removes the editor; the document stays open (its provider is the caller's). */
  close(): void {
    this.#unbind();
  }
}

function editable(readOnly: boolean): Extension {
  return [EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)];
}
