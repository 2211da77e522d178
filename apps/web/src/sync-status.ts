import type { DocHandle, SyncClient } from '@scopesync/client';
import { h } from './ui/dom.ts';

/**
 * The online/offline indicator with the number of unsynced changes: local edits that are
 * safe in IndexedDB but not yet acknowledged by the relay (the outbox). Sections register the
 * documents they open; the count is the sum of their outboxes.
 */
export class SyncStatus {
  /** The pill for the top bar. */
  readonly element: HTMLElement;
  /** A line for the page while offline, saying that nothing is lost. */
  readonly offlineNotice: HTMLElement;
  readonly #client: SyncClient;
  readonly #pending = new Map<DocHandle, number>();
  readonly #label: HTMLElement;

  constructor(client: SyncClient) {
    this.#client = client;
    this.#label = h('span', { class: 'label' });
    this.element = h(
      'span',
      { class: 'status', dataset: { testid: 'sync-status' } },
      h('span', { class: 'dot' }),
      this.#label,
    );
    this.offlineNotice = h('div', {
      class: 'notice warn banner',
      dataset: { testid: 'offline-notice' },
      hidden: true,
    });
    client.on('status', () => this.#render());
    this.#render();
  }

  /** Counts `handle`'s unsynced changes until it closes; returns the function that stops counting. */
  watch(handle: DocHandle): () => void {
    const update = (count: number) => {
      this.#pending.set(handle, count);
      this.#render();
    };
    update(handle.pending);
    const stopPending = handle.on('pending', update);
    const stop = () => {
      stopPending();
      stopClosed();
      this.#pending.delete(handle);
      this.#render();
    };
    const stopClosed = handle.on('closed', stop);
    return stop;
  }

  /** Unsynced changes across every watched document. */
  get pending(): number {
    let total = 0;
    for (const count of this.#pending.values()) total += count;
    return total;
  }

  #render(): void {
    const status = this.#client.status;
    const pending = this.pending;
    const plural = pending === 1 ? '' : 's';
    // While the relay is down the client keeps retrying ('connecting'): for a person that is
    // simply offline.
    const state = status === 'online' ? 'online' : 'offline';
    let text: string;
    let notice: string;
    if (state === 'online') {
      text = pending === 0 ? 'Online · all changes synced' : `Online · syncing ${pending} change${plural}`;
      notice = '';
    } else if (status === 'auth-failed') {
      text = `Key refused · ${pending} unsynced change${plural}`;
      notice =
        'The relay no longer accepts this device’s key. Your data stays in this browser, but it cannot sync.';
    } else {
      text = `Offline · ${pending} unsynced change${plural}`;
      notice =
        'You are offline. Everything keeps working and is saved in this browser' +
        (pending > 0 ? `; ${pending} change${plural} will sync when the relay is back.` : '.');
    }
    this.element.className = `status ${state}`;
    this.element.dataset.state = state;
    this.element.dataset.pending = String(pending);
    this.element.title =
      state === 'online'
        ? 'Connected to the relay. Edits are saved in this browser first, then synced.'
        : 'Not connected. Everything keeps working and is saved in this browser; it syncs when the relay is back.';
    this.#label.textContent = text;
    this.offlineNotice.textContent = notice;
    this.offlineNotice.hidden = notice === '';
  }
}
