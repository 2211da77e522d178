import { levelName } from '../level-name.ts';
import { forgetDevice } from '../session.ts';
import type { TourContext, TourSection } from '../tour-context.ts';
import { copyButton } from '../ui/copy-button.ts';
import { h } from '../ui/dom.ts';
import { Notice } from '../ui/notice.ts';
import { sectionFrame } from '../ui/section-frame.ts';
import { safetyNumberCard } from './safety-number-card.ts';

/** The places the tour goes next, one line each. */
const NEXT: readonly [string, string][] = [
  ['notes', 'Write a private note — end-to-end encrypted, even the relay cannot read it.'],
  ['profile', 'Fill in your public profile, and look up someone else’s by user id.'],
  ['announcement', 'See the announcement everyone reads and only admins may change.'],
  ['guestbook', 'Sign the guestbook that everyone may write.'],
  ['docs', 'Create a document, share it by user id, and edit it together live.'],
  ['activity', 'See who read or changed your data, from the relay’s audit log.'],
];

/** Step 1: who you are — the device registration and the user id others use. */
export function deviceSection({ client, userId }: TourContext): TourSection {
  const notice = new Notice('device-notice');
  const forget = h(
    'button',
    {
      type: 'button',
      class: 'danger small',
      dataset: { testid: 'forget-device' },
      on: {
        click: async () => {
          const sure = confirm(
            'Forget this device? Its key and everything stored in this browser are deleted; what was synced stays on the relay.',
          );
          if (!sure) return;
          try {
            await forgetDevice(client);
            location.hash = '';
            location.reload();
          } catch (error) {
            notice.error(error, 'forget this device');
          }
        },
      },
    },
    'Forget this device',
  );
  const element = sectionFrame(
    {
      id: 'device',
      title: 'Your device',
      lead:
        'This browser registered itself with the relay as a device. It got an API key, kept encrypted in this ' +
        'browser, and you got a user id.',
    },
    h(
      'div',
      { class: 'card' },
      h('h3', null, 'Your user id'),
      h(
        'div',
        { class: 'row' },
        h('code', { class: 'user-id', dataset: { testid: 'device-user-id' } }, userId),
        copyButton(() => userId),
      ),
      h(
        'p',
        { class: 'muted small' },
        'Give it to others: they use it to read your public profile and to share documents with you.',
      ),
      h(
        'p',
        { class: 'small' },
        'Permission level: ',
        h('b', { dataset: { testid: 'my-level' } }, levelName(client.level)),
      ),
    ),
    h(
      'div',
      { class: 'card' },
      h('h3', null, 'What to try'),
      h(
        'ol',
        { style: 'margin:0;padding-left:20px;display:grid;gap:4px' },
        ...NEXT.map(([id, text]) => h('li', null, h('a', { href: `#${id}` }, text))),
      ),
      h(
        'p',
        { class: 'muted small' },
        'Try it offline too: stop the relay and keep working — changes wait in this browser and sync when it is back.',
      ),
    ),
    recoveryCard(client, notice),
    safetyNumberCard(client, notice),
    h('div', { class: 'row' }, forget),
    notice.element,
  );
  return { id: 'device', title: 'Your device', hint: 'sign-up', element };
}

/**
 * The recovery phrase: the 24 words that carry this user's keys. Shown on request only, as
 * anyone holding them can read the private notes.
 */
function recoveryCard(client: TourContext['client'], notice: Notice): HTMLElement {
  const words = h('ol', { class: 'phrase', dataset: { testid: 'recovery-words' }, hidden: true });
  const toggle = h(
    'button',
    { type: 'button', class: 'small', dataset: { testid: 'show-phrase' } },
    'Show recovery phrase',
  );
  toggle.addEventListener('click', async () => {
    if (!words.hidden) {
      words.hidden = true;
      words.replaceChildren();
      toggle.textContent = 'Show recovery phrase';
      return;
    }
    try {
      const phrase = await client.encryption.exportRecoveryPhrase();
      words.replaceChildren(...phrase.split(' ').map((word) => h('li', null, word)));
      words.hidden = false;
      toggle.textContent = 'Hide it';
    } catch (error) {
      notice.error(error, 'show your recovery phrase');
    }
  });
  return h(
    'div',
    { class: 'card' },
    h('h3', null, 'Your keys'),
    h(
      'p',
      { class: 'muted small' },
      'Private notes are encrypted with keys only your devices hold. To read them on another device, link it with your ' +
        '24-word recovery phrase. Anyone who has the phrase can read them: write it down, share it with no one.',
    ),
    h('div', { class: 'row' }, toggle),
    words,
  );
}
