import type { SyncClient } from '@scopesync/client';
import { AnnouncementBanner } from './announcement-banner.ts';
import { describeError } from './describe-error.ts';
import { activitySection } from './sections/activity-section.ts';
import { announcementSection } from './sections/announcement-section.ts';
import { deviceSection } from './sections/device-section.ts';
import { guestbookSection } from './sections/guestbook-section.ts';
import { privateNotesSection } from './sections/private-notes-section.ts';
import { profileSection } from './sections/profile-section.ts';
import { sharedDocsSection } from './sections/shared-docs-section.ts';
import { isSignedUp, openSession, type SessionStart } from './session.ts';
import { SyncStatus } from './sync-status.ts';
import type { TourContext, TourSection } from './tour-context.ts';
import { copyButton } from './ui/copy-button.ts';
import { h, replaceChildren } from './ui/dom.ts';
import { welcomePage } from './welcome-page.ts';

/**
 * Starts the tour in `root`: resumes this browser's device if it has one (offline too, from
 * what the client stored), otherwise shows the welcome page with the sign-up.
 */
export async function startTour(root: HTMLElement): Promise<void> {
  let client: SyncClient;
  try {
    client = await openSession({ kind: 'resume' });
  } catch (error) {
    replaceChildren(
      root,
      h(
        'div',
        { class: 'welcome' },
        h('h1', null, 'scopesync'),
        h('div', { class: 'notice error' }, describeError(error, 'open the data stored in this browser')),
      ),
    );
    return;
  }
  if (isSignedUp(client)) {
    showTour(root, client);
    return;
  }
  // A guest: nothing stored yet. Sign-up replaces this client with the new device's.
  const start = async (how: SessionStart) => {
    const next = await openSession(how);
    if (!isSignedUp(next)) {
      await next.close();
      throw new Error('the relay did not confirm a user id for this key');
    }
    await client.close();
    client = next;
    showTour(root, next);
  };
  replaceChildren(root, welcomePage(start));
}

/** Renders the signed-up tour: top bar, navigation, and one section at a time (by URL hash). */
function showTour(root: HTMLElement, client: SyncClient): void {
  const userId = client.userId as string;
  const sync = new SyncStatus(client);
  const context: TourContext = { client, userId, sync };
  const sections: TourSection[] = [
    deviceSection(context),
    privateNotesSection(context),
    profileSection(context),
    announcementSection(context),
    guestbookSection(context),
    sharedDocsSection(context),
    activitySection(context),
  ];
  const banner = new AnnouncementBanner(context);

  const links = sections.map((section, index) =>
    h(
      'a',
      { href: `#${section.id}`, dataset: { testid: `nav-${section.id}` } },
      h('span', { class: 'num' }, String(index + 1)),
      h('span', { class: 'label' }, section.title),
      h('span', { class: 'hint' }, section.hint),
    ),
  );
  const main = h(
    'main',
    null,
    sync.offlineNotice,
    banner.element,
    ...sections.map((section) => section.element),
  );

  const show = () => {
    const id = location.hash.slice(1);
    const current = sections.find((section) => section.id === id) ?? (sections[0] as TourSection);
    for (const section of sections) section.element.hidden = section !== current;
    links.forEach((link, index) => {
      if (sections[index] === current) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    });
    current.onShow?.();
  };
  window.addEventListener('hashchange', show);

  replaceChildren(
    root,
    h(
      'header',
      { class: 'topbar' },
      h('div', { class: 'brand' }, 'scopesync', h('small', null, 'product tour')),
      h('span', { class: 'spacer' }),
      sync.element,
      h(
        'span',
        { class: 'identity' },
        'You: ',
        h('code', { dataset: { testid: 'my-user-id' } }, userId),
        copyButton(() => userId),
      ),
    ),
    h(
      'div',
      { class: 'layout' },
      h(
        'nav',
        { class: 'nav', 'aria-label': 'Tour' },
        h('ol', null, ...links.map((link) => h('li', null, link))),
        h(
          'p',
          { class: 'about' },
          'Everything here is saved in this browser first and works offline; the relay syncs it and checks every read and write against its scope.',
        ),
      ),
      main,
    ),
  );
  show();
}
