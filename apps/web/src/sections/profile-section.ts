import { DATA_MAP, type JsonObject } from '@scopesync/client';
import { isUserId } from '@scopesync/core';
import { onDocChange } from '../collab/on-doc-change.ts';
import { userExists } from '../relay-api.ts';
import type { TourContext, TourSection } from '../tour-context.ts';
import { h, replaceChildren } from '../ui/dom.ts';
import { Notice } from '../ui/notice.ts';
import { sectionFrame } from '../ui/section-frame.ts';

/** A profile as the tour stores it: `USER_PUBLIC/<user>/profile`. */
interface Profile extends JsonObject {
  readonly name?: string;
  readonly bio?: string;
}

/** Step 3: a public profile (USER_PUBLIC) that anyone can look up by user id. */
export function profileSection({ client, userId, sync }: TourContext): TourSection {
  const saveNotice = new Notice('profile-notice');
  const lookupNotice = new Notice('lookup-notice');
  const name = h('input', {
    type: 'text',
    placeholder: 'Your name',
    'aria-label': 'Name',
    dataset: { testid: 'profile-name' },
  });
  const bio = h('textarea', {
    rows: 3,
    placeholder: 'A line about you',
    'aria-label': 'Bio',
    dataset: { testid: 'profile-bio' },
  });

  // Keep the form in step with the stored profile (edited on another device, or by a moderator).
  const handle = client.doc(`USER_PUBLIC/${userId}/profile`);
  sync.watch(handle);
  const fill = () => {
    const data = handle.doc.getMap(DATA_MAP);
    if (document.activeElement !== name) name.value = String(data.get('name') ?? '');
    if (document.activeElement !== bio) bio.value = String(data.get('bio') ?? '');
  };
  onDocChange(handle, fill);
  handle.whenLoaded.catch((error: unknown) => saveNotice.error(error, 'load your profile'));

  const save = async () => {
    saveNotice.clear();
    try {
      await client.userData.set('USER_PUBLIC', userId, 'profile', {
        name: name.value.trim(),
        bio: bio.value.trim(),
      });
      saveNotice.show(
        'ok',
        client.online
          ? 'Saved. Anyone can now read it with your user id.'
          : 'Saved in this browser. It reaches the relay when you are back online.',
      );
    } catch (error) {
      saveNotice.error(error, 'save your profile');
    }
  };

  const lookupId = h('input', {
    type: 'text',
    placeholder: 'user_0123456789abcdef',
    'aria-label': 'User id to look up',
    class: 'grow mono',
    dataset: { testid: 'lookup-id' },
  });
  const result = h('div', { dataset: { testid: 'lookup-result' } });
  const lookup = async () => {
    lookupNotice.clear();
    replaceChildren(result);
    const id = lookupId.value.trim();
    if (!isUserId(id)) {
      lookupNotice.show(
        'error',
        'That is not a user id. User ids look like user_ followed by 16 characters 0–9 and a–f.',
      );
      return;
    }
    try {
      const profile = await client.userData.get<Profile>('USER_PUBLIC', id, 'profile');
      if (profile && (profile.name || profile.bio)) {
        replaceChildren(
          result,
          h(
            'div',
            { class: 'card' },
            h('h3', { dataset: { testid: 'lookup-name' } }, profile.name || '(no name)'),
            h('p', { dataset: { testid: 'lookup-bio' } }, profile.bio || ''),
            h('p', { class: 'muted small' }, h('code', null, id), id === userId ? ' — that is you' : ''),
          ),
        );
        if (id !== userId) {
          lookupNotice.show(
            'info',
            'They can see that you read their profile: cross-user reads are audited.',
          );
        }
        return;
      }
      lookupNotice.show(
        'warn',
        (await userExists(id))
          ? `${id} has not written a public profile yet.`
          : `There is no user ${id} on this relay.`,
      );
    } catch (error) {
      lookupNotice.error(error, 'look up this user');
    }
  };

  const element = sectionFrame(
    {
      id: 'profile',
      title: 'Public profile',
      lead: 'Everyone can read your profile by your user id; only you can change it. Reads by others are audited.',
      rules: {
        scope: 'USER_PUBLIC',
        tone: 'public',
        read: 'everyone',
        write: 'you (moderators too, audited)',
        stored: 'Yjs updates',
      },
    },
    h(
      'form',
      {
        class: 'card',
        on: {
          submit: (event) => {
            event.preventDefault();
            void save();
          },
        },
      },
      h('h3', null, 'Your profile'),
      name,
      bio,
      h(
        'div',
        { class: 'row' },
        h(
          'button',
          { type: 'submit', class: 'primary', dataset: { testid: 'profile-save' } },
          'Save profile',
        ),
      ),
      saveNotice.element,
    ),
    h(
      'form',
      {
        class: 'card',
        on: {
          submit: (event) => {
            event.preventDefault();
            void lookup();
          },
        },
      },
      h('h3', null, 'Look someone up'),
      h(
        'div',
        { class: 'row' },
        lookupId,
        h('button', { type: 'submit', dataset: { testid: 'lookup-submit' } }, 'Look up'),
      ),
      lookupNotice.element,
      result,
    ),
  );
  return { id: 'profile', title: 'Public profile', hint: 'USER_PUBLIC', element };
}
