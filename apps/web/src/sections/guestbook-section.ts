import type * as Y from 'yjs';
import { onDocChange } from '../collab/on-doc-change.ts';
import { displayName } from '../display-name.ts';
import type { TourContext, TourSection } from '../tour-context.ts';
import { h, replaceChildren } from '../ui/dom.ts';
import { Notice } from '../ui/notice.ts';
import { sectionFrame } from '../ui/section-frame.ts';

/** One signature. Entries are appended to a Y.Array, so concurrent signatures all survive. */
interface GuestbookEntry {
  readonly by: string;
  readonly name: string;
  readonly text: string;
  readonly at: number;
}

/** Entries shown at most (newest first). */
const SHOWN = 30;

/** Step 5: the guestbook (PUBLIC_RW) — everyone reads and writes it. */
export function guestbookSection({ client, userId, sync }: TourContext): TourSection {
  const notice = new Notice('guestbook-notice');
  const message = h('input', {
    type: 'text',
    placeholder: 'Say hello…',
    maxLength: 280,
    class: 'grow',
    'aria-label': 'Guestbook message',
    dataset: { testid: 'guestbook-input' },
  });
  const list = h('ul', { class: 'list', dataset: { testid: 'guestbook-entries' } });
  const handle = client.doc('PUBLIC_RW/_/guestbook');
  sync.watch(handle);
  const entries = (): Y.Array<GuestbookEntry> => handle.doc.getArray<GuestbookEntry>('entries');

  const render = () => {
    const all = entries().toArray();
    const shown = all.slice(-SHOWN).reverse();
    if (shown.length === 0) {
      replaceChildren(list, h('li', { class: 'empty' }, 'Nobody has signed yet. Be the first.'));
      return;
    }
    replaceChildren(
      list,
      ...shown.map((entry) =>
        h(
          'li',
          { class: 'entry', dataset: { testid: 'guestbook-entry' } },
          h('span', null, entry.text),
          h(
            'span',
            { class: 'meta' },
            entry.by === userId ? `${entry.name} (you)` : entry.name,
            ' · ',
            new Date(entry.at).toLocaleString(),
          ),
        ),
      ),
    );
  };
  onDocChange(handle, render);
  handle.whenLoaded.catch((error: unknown) => notice.error(error, 'load the guestbook'));

  const sign = async () => {
    notice.clear();
    const text = message.value.trim();
    if (!text) return;
    try {
      const profileName = await displayName(client, userId);
      await handle.transact((doc) => {
        doc
          .getArray<GuestbookEntry>('entries')
          .push([{ by: userId, name: profileName, text, at: Date.now() }]);
      });
      message.value = '';
    } catch (error) {
      notice.error(error, 'sign the guestbook');
    }
  };

  const element = sectionFrame(
    {
      id: 'guestbook',
      title: 'Guestbook',
      lead: 'A page everyone may read and write — guests included. Signatures made at the same time, or offline, all survive.',
      rules: { scope: 'PUBLIC_RW', tone: 'rw', read: 'everyone', write: 'everyone', stored: 'Yjs updates' },
    },
    h(
      'form',
      {
        class: 'card',
        on: {
          submit: (event) => {
            event.preventDefault();
            void sign();
          },
        },
      },
      h(
        'div',
        { class: 'row' },
        message,
        h('button', { type: 'submit', class: 'primary', dataset: { testid: 'guestbook-sign' } }, 'Sign'),
      ),
      notice.element,
      list,
    ),
  );
  return { id: 'guestbook', title: 'Guestbook', hint: 'PUBLIC_RW', element };
}
