import { DATA_MAP } from '@scopesync/client';
import { Level } from '@scopesync/core';
import type * as Y from 'yjs';
import { ANNOUNCEMENT_DOC } from '../announcement-banner.ts';
import { LiveDoc } from '../collab/live-doc.ts';
import { levelName } from '../level-name.ts';
import type { TourContext, TourSection } from '../tour-context.ts';
import { h } from '../ui/dom.ts';
import { Notice } from '../ui/notice.ts';
import { sectionFrame } from '../ui/section-frame.ts';

/**
 * Step 4: the announcement (PUBLIC_READ). Admins edit it; everyone else sees it read-only and
 * may try to change it anyway, to see the refusal.
 */
export function announcementSection({ client, sync }: TourContext): TourSection {
  const notice = new Notice('announcement-notice');
  const isAdmin = client.level >= Level.Admin;
  const editor = h('textarea', {
    rows: 3,
    readOnly: !isAdmin,
    placeholder: isAdmin ? 'Write an announcement for everyone…' : 'No announcement right now.',
    'aria-label': 'Announcement',
    dataset: { testid: 'announcement-text' },
  });
  const fill = (doc: Y.Doc) => {
    if (document.activeElement !== editor || !isAdmin)
      editor.value = String(doc.getMap(DATA_MAP).get('text') ?? '');
  };
  new LiveDoc(client, ANNOUNCEMENT_DOC, fill, (handle) => sync.watch(handle));

  const publish = async () => {
    notice.clear();
    try {
      await client.userData.set('PUBLIC_READ', '_', 'announcement', { text: editor.value.trim() });
      notice.show('ok', 'Published: everyone sees it in the banner.');
    } catch (error) {
      notice.error(error, 'change the announcement');
    }
  };

  const element = sectionFrame(
    {
      id: 'announcement',
      title: 'Announcement',
      lead: 'One message for everyone, shown in the banner at the top. Everyone can read it — guests too — but only admins can change it.',
      rules: { scope: 'PUBLIC_READ', tone: 'read', read: 'everyone', write: 'admins', stored: 'Yjs updates' },
    },
    h(
      'div',
      { class: 'card' },
      h('h3', null, isAdmin ? 'Edit the announcement' : 'The announcement'),
      editor,
      isAdmin
        ? h(
            'div',
            { class: 'row' },
            h(
              'button',
              {
                type: 'button',
                class: 'primary',
                dataset: { testid: 'announcement-publish' },
                on: { click: publish },
              },
              'Publish',
            ),
          )
        : h(
            'div',
            { class: 'row' },
            h(
              'p',
              { class: 'muted small grow', dataset: { testid: 'announcement-readonly' } },
              `Read-only for you: only admins can change it, and you are a ${levelName(client.level)}.`,
            ),
            h(
              'button',
              { type: 'button', dataset: { testid: 'announcement-try' }, on: { click: publish } },
              'Try to change it anyway',
            ),
          ),
      notice.element,
    ),
  );
  return { id: 'announcement', title: 'Announcement', hint: 'PUBLIC_READ', element };
}
