import type { TourContext } from '../tour-context.ts';
import { h } from '../ui/dom.ts';
import type { Notice } from '../ui/notice.ts';

/**
 * Compare keys with someone you share encrypted documents with: both of you open this card,
 * enter the other's user id and read the 30 digits to each other (in person, on a call). Equal
 * digits mean the relay gave each of you the other's real keys. When someone's keys change, the
 * card says so and nothing is shared with them until you accept the new keys.
 */
export function safetyNumberCard(client: TourContext['client'], notice: Notice): HTMLElement {
  const other = h('input', {
    type: 'text',
    placeholder: 'Their user id (user_…)',
    dataset: { testid: 'safety-user' },
  });
  const digits = h('code', { class: 'safety-number', dataset: { testid: 'safety-number' } });
  const changed = h('div', { class: 'row', hidden: true, dataset: { testid: 'key-changed' } });
  const compare = async (): Promise<void> => {
    const userId = other.value.trim();
    if (!userId) {
      notice.show('error', 'Enter the user id of the person you compare keys with.');
      return;
    }
    try {
      digits.textContent = await client.trust.safetyNumber(userId);
    } catch (error) {
      digits.textContent = '';
      notice.error(error, 'compute the safety number');
    }
  };
  client.on('key-changed', ({ userId }) => {
    const accept = h(
      'button',
      {
        type: 'button',
        class: 'small',
        dataset: { testid: 'accept-keys' },
        on: {
          click: async () => {
            try {
              await client.trust.accept(userId);
              changed.hidden = true;
              other.value = userId;
              await compare();
            } catch (error) {
              notice.error(error, 'accept the new keys');
            }
          },
        },
      },
      'Accept new keys',
    );
    changed.replaceChildren(
      h(
        'span',
        { class: 'small' },
        `${userId}’s keys changed. Compare safety numbers before you accept them.`,
      ),
      accept,
    );
    changed.hidden = false;
  });
  return h(
    'div',
    { class: 'card' },
    h('h3', null, 'Safety number'),
    h(
      'p',
      { class: 'muted small' },
      'Before you trust a shared encrypted document, compare safety numbers with the other person: if the ' +
        'digits differ, someone — the relay — gave one of you the wrong keys.',
    ),
    h(
      'div',
      { class: 'row' },
      other,
      h(
        'button',
        {
          type: 'button',
          class: 'small',
          dataset: { testid: 'safety-compare' },
          on: { click: () => void compare() },
        },
        'Compare',
      ),
    ),
    digits,
    changed,
  );
}
