import type { DocHandle } from '@scopesync/client';
import { isSyncError } from '@scopesync/core';
import { bindHandleText } from '../collab/handle-text.ts';
import type { TourContext, TourSection } from '../tour-context.ts';
import { h } from '../ui/dom.ts';
import { lockIcon } from '../ui/lock-icon.ts';
import { Notice } from '../ui/notice.ts';
import { sectionFrame } from '../ui/section-frame.ts';

/** Step 2: private notes in USER_PRIVATE, readable by their owner only and end-to-end encrypted. */
export function privateNotesSection({ client, userId, sync }: TourContext): TourSection {
  const notice = new Notice('notes-notice');
  const textarea = h('textarea', {
    rows: 9,
    placeholder: 'Write something only you can read…',
    'aria-label': 'Private notes',
    dataset: { testid: 'notes-text' },
  });
  const state = h('p', { class: 'muted small', dataset: { testid: 'notes-state' } });
  const badge = h(
    'p',
    { class: 'e2e', dataset: { testid: 'notes-e2e' } },
    lockIcon(),
    'End-to-end encrypted — only your devices hold the key',
  );

  let handle: DocHandle | undefined;
  try {
    handle = client.doc(`USER_PRIVATE/${userId}/notes`);
  } catch (error) {
    // Most likely: this build has no cipher for private documents, and scopesync refuses to
    // keep them as plaintext. Say so rather than offering an editor that cannot save.
    textarea.disabled = true;
    textarea.placeholder = 'Private notes are not available in this browser.';
    badge.hidden = true;
    if (isSyncError(error, 'BadRequest')) {
      notice.show(
        'error',
        'Private notes are end-to-end encrypted, and this browser has no encryption keys set up, so scopesync ' +
          `refuses to store them in plaintext. (${error.message})`,
      );
    } else {
      notice.error(error, 'open your private notes');
    }
  }
  if (handle) {
    const notes = handle;
    sync.watch(notes);
    bindHandleText(notes, textarea);
    const render = () => {
      state.textContent =
        notes.pending === 0
          ? 'Saved in this browser and on the relay (as ciphertext).'
          : `Saved in this browser · ${notes.pending} change${notes.pending === 1 ? '' : 's'} waiting for the relay.`;
    };
    notes.on('pending', render);
    notes.on('error', (error) => notice.error(error, 'save your note'));
    void notes.whenLoaded.then(render, (error: unknown) =>
      notice.error(error, 'load your notes from this browser'),
    );
  }

  const element = sectionFrame(
    {
      id: 'notes',
      title: 'Private notes',
      lead:
        'Only you can read these. This browser encrypts every change before it leaves, so the relay stores ' +
        'ciphertext it cannot read — and cannot hand to anyone else.',
      rules: {
        scope: 'USER_PRIVATE',
        tone: 'private',
        read: 'only you',
        write: 'only you',
        stored: 'ciphertext only',
      },
    },
    h('div', { class: 'card' }, badge, textarea, state),
    notice.element,
  );
  return { id: 'notes', title: 'Private notes', hint: 'USER_PRIVATE', element };
}
