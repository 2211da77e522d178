import { DATA_MAP } from '@scopesync/client';
import { LiveDoc } from './collab/live-doc.ts';
import type { TourContext } from './tour-context.ts';
import { h } from './ui/dom.ts';

/** Where the announcement lives: a PUBLIC_READ value everyone reads and only admins write. */
export const ANNOUNCEMENT_DOC = 'PUBLIC_READ/_/announcement';

/**
 * The announcement banner above every section, live: when an admin publishes, every open
 * tour shows it at once (and offline, the last one this browser saw).
 */
export class AnnouncementBanner {
  /** The banner; hidden while there is no announcement. */
  readonly element: HTMLElement;

  constructor({ client }: TourContext) {
    const text = h('span', { dataset: { testid: 'banner-text' } });
    this.element = h(
      'div',
      { class: 'notice info banner', role: 'note', dataset: { testid: 'announcement-banner' }, hidden: true },
      h('b', null, 'Announcement: '),
      text,
    );
    new LiveDoc(client, ANNOUNCEMENT_DOC, (doc) => {
      const value = String(doc.getMap(DATA_MAP).get('text') ?? '').trim();
      text.textContent = value;
      this.element.hidden = value === '';
    });
  }
}
