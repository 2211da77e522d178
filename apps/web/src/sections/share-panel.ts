import type { BlobShare, SyncClient } from '@scopesync/client';
import { isSyncError, isUserId, type ShareLevel } from '@scopesync/core';
import { describeError } from '../describe-error.ts';
import { userExists } from '../relay-api.ts';
import { h, replaceChildren } from '../ui/dom.ts';
import { Notice } from '../ui/notice.ts';

const LEVEL_LABEL: Record<ShareLevel, string> = { read_only: 'Can read', read_write: 'Can edit' };

/** A select of share levels. */
function levelSelect(value: ShareLevel, testId: string): HTMLSelectElement {
  const select = h(
    'select',
    { 'aria-label': 'Access level', dataset: { testid: testId } },
    ...(Object.keys(LEVEL_LABEL) as ShareLevel[]).map((level) =>
      h('option', { value: level, selected: level === value }, LEVEL_LABEL[level]),
    ),
  );
  return select;
}

/**
 * The owner's sharing controls for one document: share by user id (read-only or read-write),
 * who has access (from the relay's share list), change a level, revoke. Every change takes
 * effect on the sharee's open connection at once.
 */
export class SharePanel {
  /** The panel. */
  readonly element: HTMLElement;
  readonly #client: SyncClient;
  readonly #blobId: string;
  readonly #userId: string;
  readonly #list: HTMLElement;
  readonly #notice = new Notice('share-notice');

  constructor(client: SyncClient, blobId: string, userId: string) {
    this.#client = client;
    this.#blobId = blobId;
    this.#userId = userId;
    const who = h('input', {
      type: 'text',
      placeholder: 'user_0123456789abcdef',
      class: 'grow mono',
      'aria-label': 'Share with user id',
      dataset: { testid: 'share-user' },
    });
    const level = levelSelect('read_only', 'share-level');
    this.#list = h('ul', { class: 'list share-list', dataset: { testid: 'share-list' } });
    this.element = h(
      'form',
      {
        class: 'card',
        dataset: { testid: 'share-panel' },
        on: {
          submit: (event) => {
            event.preventDefault();
            void this.#share(who.value.trim(), level.value as ShareLevel).then((ok) => {
              if (ok) who.value = '';
            });
          },
        },
      },
      h('h3', null, 'Share by user id'),
      h(
        'div',
        { class: 'share-form' },
        who,
        level,
        h('button', { type: 'submit', class: 'primary', dataset: { testid: 'share-submit' } }, 'Share'),
      ),
      this.#notice.element,
      h('h3', null, 'Who has access'),
      this.#list,
    );
    void this.refresh();
  }

  /** Reloads the list of people with access from the relay. */
  async refresh(): Promise<void> {
    let shares: BlobShare[];
    try {
      shares = await this.#client.blobs.listShares(this.#blobId);
    } catch (error) {
      if (isSyncError(error, 'NotFound')) {
        // Not on the relay yet (created offline, or its first edit is still in flight).
        replaceChildren(
          this.#list,
          this.#ownerRow(),
          h('li', { class: 'empty small' }, 'Not shared with anyone.'),
        );
        return;
      }
      replaceChildren(
        this.#list,
        this.#ownerRow(),
        h('li', { class: 'empty small' }, describeError(error, 'list who has access')),
      );
      return;
    }
    replaceChildren(
      this.#list,
      this.#ownerRow(),
      ...shares.map((share) => this.#shareRow(share)),
      shares.length === 0 ? h('li', { class: 'empty small' }, 'Not shared with anyone yet.') : null,
    );
  }

  #ownerRow(): HTMLElement {
    return h(
      'li',
      null,
      h('code', { class: 'grow' }, this.#userId),
      h('span', { class: 'muted small' }, 'you · owner'),
    );
  }

  #shareRow(share: BlobShare): HTMLElement {
    const level = levelSelect(share.accessLevel, 'share-row-level');
    level.addEventListener('change', () => {
      void this.#share(share.userId, level.value as ShareLevel);
    });
    return h(
      'li',
      { class: 'share-row', dataset: { testid: 'share-row', user: share.userId, level: share.accessLevel } },
      h('code', { class: 'grow' }, share.userId),
      level,
      h(
        'button',
        {
          type: 'button',
          class: 'danger small',
          dataset: { testid: 'share-revoke' },
          on: { click: () => void this.#revoke(share.userId) },
        },
        'Revoke',
      ),
    );
  }

  /** Shares (or changes the level); true on success. Errors are shown in words. */
  async #share(userId: string, level: ShareLevel): Promise<boolean> {
    this.#notice.clear();
    if (!isUserId(userId)) {
      this.#notice.show(
        'error',
        'That is not a user id. User ids look like user_ followed by 16 characters 0–9 and a–f.',
      );
      return false;
    }
    if (userId === this.#userId) {
      this.#notice.show('error', 'That is your own user id: you own this document already.');
      return false;
    }
    try {
      await this.#client.blobs.share(this.#blobId, userId, level);
      this.#notice.show(
        'ok',
        `${userId} ${level === 'read_only' ? 'can now read' : 'can now read and edit'} this document. Give them its id.`,
      );
      await this.refresh();
      return true;
    } catch (error) {
      if (isSyncError(error, 'NotFound') && !(await userExists(userId).catch(() => true))) {
        this.#notice.show('error', `There is no user ${userId} on this relay. Check the id and try again.`);
      } else if (isSyncError(error, 'NotFound')) {
        this.#notice.show(
          'error',
          'This document is not on the relay yet. Type something in it while online, then share.',
        );
      } else {
        this.#notice.error(error, `share with ${userId}`);
      }
      return false;
    }
  }

  async #revoke(userId: string): Promise<void> {
    this.#notice.clear();
    try {
      await this.#client.blobs.revoke(this.#blobId, userId);
      this.#notice.show(
        'ok',
        `Revoked: ${userId} can no longer open this document — their open copy closed at once.`,
      );
    } catch (error) {
      this.#notice.error(error, `revoke ${userId}’s access`);
    }
    await this.refresh();
  }
}
