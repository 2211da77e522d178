import { type DocHandle, DocProvider, type SyncClient } from '@scopesync/client';
import type { Awareness } from 'y-protocols/awareness';
import { CodeMirrorEditor, type CursorUser } from '../collab/codemirror-editor.ts';
import { onDocChange } from '../collab/on-doc-change.ts';
import { userColor } from '../collab/user-color.ts';
import type { DocListItem } from '../doc-list.ts';
import type { SyncStatus } from '../sync-status.ts';
import { copyButton } from '../ui/copy-button.ts';
import { h, replaceChildren } from '../ui/dom.ts';
import { Notice } from '../ui/notice.ts';

/** What the editor shows about my access. */
type AccessView = 'owner' | 'read-write' | 'read' | 'waiting' | 'none';

const ACCESS_LABEL: Record<AccessView, string> = {
  owner: 'Owner',
  'read-write': 'Can edit',
  read: 'Read-only',
  waiting: 'Checking access…',
  none: 'No access',
};

/** What a {@link DocEditor} needs. */
export interface DocEditorOptions {
  readonly client: SyncClient;
  readonly sync: SyncStatus;
  readonly userId: string;
  readonly item: DocListItem;
  /** How my cursor is labelled for the others. */
  readonly me: CursorUser;
  /** Called when the document's title changes (mine or someone else's edit). */
  readonly onTitle: (title: string) => void;
}

/**
 * One open shared document: its title and text (a Y.Text in a CodeMirror editor), my access
 * as the relay reports it — live, so an upgrade to read-write or a revocation shows at once,
 * and the editor is read-only unless I may write — and everyone's cursors.
 */
export class DocEditor {
  /** The editor panel. */
  readonly element: HTMLElement;
  readonly #provider: DocProvider;
  readonly #handle: DocHandle;
  readonly #editor: CodeMirrorEditor;
  readonly #title: HTMLInputElement;
  readonly #badge: HTMLElement;
  readonly #presence: HTMLElement;
  readonly #presenceRow: HTMLElement;
  readonly #notice = new Notice('doc-notice');
  readonly #item: DocListItem;
  readonly #cleanups: (() => void)[] = [];
  #stopPresence: (() => void) | undefined;
  /** True once the relay granted read or read-write in this session (so "none" later means revoked). */
  #granted = false;

  constructor(options: DocEditorOptions) {
    const { client, sync, item, userId } = options;
    this.#item = item;
    this.#provider = new DocProvider(client.blobs.open(item.id), client);
    const provider = this.#provider;
    this.#handle = provider.handle;
    const handle = this.#handle;
    this.#cleanups.push(sync.watch(handle));

    this.#editor = new CodeMirrorEditor(provider, {
      field: 'text',
      me: options.me,
      readOnly: !this.#writable(),
      label: 'Document text',
      testId: 'doc-text',
    });
    this.#title = h('input', {
      type: 'text',
      class: 'grow',
      'aria-label': 'Document title',
      dataset: { testid: 'doc-title' },
    });
    this.#badge = h('span', { class: 'badge', dataset: { testid: 'doc-access' } });
    this.#presence = h('div', { class: 'presence', dataset: { testid: 'doc-presence' } });
    this.#presenceRow = h('div', { class: 'row small muted' }, 'Here now:', this.#presence);

    this.element = h(
      'div',
      { class: 'card', dataset: { testid: 'doc-editor', docId: item.id } },
      h('div', { class: 'row' }, this.#title, this.#badge),
      h(
        'div',
        { class: 'row small muted' },
        'Document id ',
        h('code', { dataset: { testid: 'doc-id' } }, item.id),
        copyButton(() => item.id, 'Copy id'),
      ),
      this.#editor.element,
      this.#presenceRow,
      this.#notice.element,
    );

    // Title: a field of the doc's `meta` map, so it syncs like the text.
    const meta = () => handle.doc.getMap<string>('meta');
    const showTitle = () => {
      const title = meta().get('title') ?? '';
      if (document.activeElement !== this.#title) this.#title.value = title;
      options.onTitle(title);
    };
    this.#title.addEventListener('change', () => {
      const title = this.#title.value.trim();
      handle
        .transact((doc) => doc.getMap<string>('meta').set('title', title))
        .catch((error: unknown) => {
          this.#notice.error(error, 'rename this document');
        });
    });

    // Presence follows the awareness, which is replaced with the doc after a refused edit.
    this.#stopPresence = watchPresence(provider.awareness, this.#presence, userId);
    this.#cleanups.push(
      provider.on('reset', ({ awareness }) => {
        this.#stopPresence?.();
        this.#stopPresence = watchPresence(awareness, this.#presence, userId);
      }),
      onDocChange(handle, showTitle),
      handle.on('permission', ({ access }) => {
        if (access === 'read' || access === 'read-write') this.#granted = true;
        this.#renderAccess();
      }),
      handle.on('error', (error) => this.#notice.error(error, 'save this edit')),
      handle.on('closed', ({ reason }) => this.#onClosed(reason)),
    );
    void handle.whenLoaded.then(
      () => {
        // The client remembers the last access the relay reported, across reloads.
        if (handle.access === 'read' || handle.access === 'read-write') this.#granted = true;
        this.#renderAccess();
      },
      (error: unknown) => this.#notice.error(error, 'load this document'),
    );
    this.#renderAccess();
  }

  /** The blob id. */
  get id(): string {
    return this.#item.id;
  }

  /** Stops syncing this document (it stays in the local store). */
  async close(): Promise<void> {
    this.#editor.close();
    this.#stopPresence?.();
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    await this.#provider.destroy();
  }

  /** Until the relay says I may write, a sharee's editor stays read-only: typing that would only be refused is worse than a clear "Read-only". */
  #writable(): boolean {
    const view = this.#access();
    return view === 'owner' || view === 'read-write';
  }

  #access(): AccessView {
    const access = this.#handle.access;
    if (this.#handle.closed || access === 'none') return 'none';
    if (this.#item.owned) return 'owner';
    if (access === undefined) return 'waiting';
    return access;
  }

  #renderAccess(): void {
    const view = this.#access();
    this.#badge.textContent = ACCESS_LABEL[view];
    const tone = { owner: 'private', 'read-write': 'private', read: 'read', waiting: '', none: 'denied' }[
      view
    ];
    this.#badge.className = `badge ${tone}`;
    this.element.dataset.access = view;
    const writable = this.#writable();
    this.#editor.setReadOnly(!writable);
    this.#title.readOnly = !writable;
    if (view === 'read') {
      this.#notice.show(
        'info',
        'Read-only: the owner shared this document with you to read. You see their edits live.',
      );
    } else if (view === 'read-write' && !this.#item.owned) {
      this.#notice.show('ok', 'You can edit: the owner shared this document with you to read and write.');
    } else if (view === 'waiting' && this.#handle.waiting && !this.#handle.closed) {
      this.#notice.show(
        'info',
        'Nothing here for you yet: it was not shared with you, or it does not exist. It opens as soon as it is.',
      );
    } else if (view !== 'none') {
      this.#notice.clear();
    }
  }

  #onClosed(reason: string): void {
    // The local copy is gone (revoked): show none of it.
    this.#editor.close();
    this.#editor.element.hidden = true;
    this.#stopPresence?.();
    this.#renderAccess();
    this.#title.value = '';
    this.#title.disabled = true;
    replaceChildren(this.#presence);
    this.#presenceRow.hidden = true;
    if (reason === 'released' || reason === 'client closed') return;
    const revoked = reason.startsWith('access revoked');
    this.#notice.show(
      'error',
      this.#item.owned
        ? 'This document is no longer available to you.'
        : revoked && this.#granted
          ? 'Your access to this document was revoked by its owner. Its copy was removed from this browser.'
          : 'You do not have access to this document: it was not shared with you, or it does not exist.',
    );
  }
}

/** Lists who else has the document open, from awareness. Returns the function that stops it. */
function watchPresence(awareness: Awareness, element: HTMLElement, userId: string): () => void {
  const render = () => {
    const people = new Map<string, string>();
    for (const [clientId, state] of awareness.getStates()) {
      const user = (state as { user?: { name?: string; color?: string } }).user;
      if (!user?.name) continue;
      people.set(
        clientId === awareness.clientID ? `${user.name} (you)` : user.name,
        user.color ?? userColor(userId),
      );
    }
    replaceChildren(
      element,
      ...[...people].map(([name, color]) =>
        h('span', { class: 'person' }, h('span', { class: 'swatch', style: `background:${color}` }), name),
      ),
    );
  };
  awareness.on('change', render);
  render();
  return () => awareness.off('change', render);
}
