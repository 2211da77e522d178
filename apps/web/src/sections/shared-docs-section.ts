import { parseBlobId } from '@scopesync/core';
import { userColor, userColorLight } from '../collab/user-color.ts';
import { displayName } from '../display-name.ts';
import { DocList, type DocListItem } from '../doc-list.ts';
import type { TourContext, TourSection } from '../tour-context.ts';
import { h, replaceChildren } from '../ui/dom.ts';
import { Notice } from '../ui/notice.ts';
import { sectionFrame } from '../ui/section-frame.ts';
import { DocEditor } from './doc-editor.ts';
import { SharePanel } from './share-panel.ts';

/** A fresh, unguessable blob id: `doc-` and 12 random hex characters. */
function newBlobId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `doc-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * Step 6: shared documents — blobs edited together. Create one, share it by user id
 * (read-only or read-write), see who has access, revoke. Documents shared with me appear in the
 * list on their own (`blobs.sharedWithMe()`); one can still be opened by its id.
 */
export function sharedDocsSection(context: TourContext): TourSection {
  const { client, userId } = context;
  const docs = new DocList(userId);
  const notice = new Notice('docs-notice');
  const listElement = h('div', { class: 'doc-list row grow', dataset: { testid: 'doc-list' } });
  const panel = h('div', { class: 'docs-panel' });
  let editor: DocEditor | undefined;
  let shares: SharePanel | undefined;
  const renderList = () => {
    const items = docs.items;
    const button = (item: DocListItem) =>
      h(
        'button',
        {
          type: 'button',
          'aria-current': editor?.id === item.id ? 'true' : 'false',
          dataset: { testid: 'doc-list-item', docId: item.id },
          on: { click: () => void select(item.id) },
        },
        item.title || 'Untitled',
        item.owned ? null : h('span', { class: 'muted small' }, ' · shared with me'),
      );
    replaceChildren(
      listElement,
      items.length === 0 ? h('span', { class: 'empty small' }, 'No documents yet.') : null,
      ...items.map(button),
    );
  };

  let selecting = 0;
  const select = async (id: string) => {
    const item = docs.get(id);
    if (!item || editor?.id === id) return;
    const turn = ++selecting;
    // My name as the others see it next to my cursor; read now, as the profile may have changed.
    const name = await displayName(client, userId);
    if (turn !== selecting) return; // another document was picked meanwhile
    await editor?.close();
    notice.clear();
    editor = new DocEditor({
      client,
      sync: context.sync,
      userId,
      item,
      me: { name, color: userColor(userId), colorLight: userColorLight(userId) },
      onTitle: (title) => {
        const current = docs.get(id);
        if (current && title && current.title !== title) {
          docs.put({ ...current, title });
          renderList();
        }
      },
    });
    shares = item.owned ? new SharePanel(client, id, userId) : undefined;
    panel.classList.toggle('with-shares', shares !== undefined);
    replaceChildren(panel, editor.element, shares?.element);
    renderList();
  };

  /** Adds what others shared with me to the list: nobody has to paste ids around. */
  const refreshShared = async () => {
    try {
      const incoming = await client.blobs.sharedWithMe();
      let added = false;
      for (const share of incoming) {
        if (docs.get(share.blobId)) continue;
        docs.put({ id: share.blobId, title: share.blobId, owned: false });
        added = true;
      }
      if (added) renderList();
    } catch {
      // Offline or refused: the list keeps what it knew; the next visit asks again.
    }
  };

  const create = async () => {
    notice.clear();
    const id = newBlobId();
    const title = `Untitled ${new Date().toLocaleDateString(undefined, { month: 'short', day: 'numeric' })}`;
    const handle = client.blobs.open(id);
    try {
      // The first write creates the blob on the relay, owned by me.
      await handle.transact((doc) => {
        doc.getMap<string>('meta').set('title', title);
      });
      docs.put({ id, title, owned: true });
      await select(id);
    } catch (error) {
      notice.error(error, 'create a document');
    } finally {
      await handle.release();
    }
  };

  const openId = h('input', {
    type: 'text',
    placeholder: 'Shared document id',
    class: 'mono',
    'aria-label': 'Document id to open',
    dataset: { testid: 'open-doc-id' },
  });
  const open = async () => {
    notice.clear();
    const id = openId.value.trim();
    try {
      parseBlobId(id);
    } catch (error) {
      notice.error(error, 'open this document');
      return;
    }
    if (!docs.get(id)) docs.put({ id, title: id, owned: false });
    openId.value = '';
    await select(id);
  };

  const element = sectionFrame(
    {
      id: 'docs',
      title: 'Shared documents',
      lead:
        'A document belongs to whoever created it. Share it by user id to read or to edit, see each other’s ' +
        'cursors live, and revoke — the other side loses access at once.',
      rules: {
        scope: 'blob',
        tone: 'blob',
        read: 'owner + sharees',
        write: 'owner + read-write sharees',
        stored: 'Yjs updates',
      },
    },
    h(
      'div',
      { class: 'card docs-toolbar' },
      h(
        'button',
        {
          type: 'button',
          class: 'primary',
          dataset: { testid: 'new-doc' },
          on: { click: () => void create() },
        },
        'New document',
      ),
      listElement,
      h(
        'form',
        {
          class: 'row open-doc',
          title: 'Open a document someone shared with you, by its id',
          on: {
            submit: (event) => {
              event.preventDefault();
              void open();
            },
          },
        },
        openId,
        h('button', { type: 'submit', dataset: { testid: 'open-doc' } }, 'Open shared'),
      ),
    ),
    notice.element,
    panel,
  );

  renderList();
  const first = docs.items[0];
  if (first) void select(first.id);
  else
    replaceChildren(
      panel,
      h('div', { class: 'card empty' }, 'Create a document, or open one someone shared with you.'),
    );

  return {
    id: 'docs',
    title: 'Shared documents',
    hint: 'blob/<id>',
    element,
    onShow: () => {
      void shares?.refresh();
      void refreshShared();
    },
  };
}
