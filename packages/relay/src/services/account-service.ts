import { isLevel, type Level, parseUserId, type RelayStore, SyncError } from '@scopesync/core';
import type { EventBus } from '../events/event-bus.ts';

/** Options of an {@link AccountService}. */
export interface AccountServiceOptions {
  readonly store: RelayStore;
  readonly bus: EventBus;
  /** Epoch milliseconds. */
  readonly now: () => number;
}

/**
 * Changes to who a caller is: revoking an API key and changing a user's level. Each is an
 * event, so the sockets that authenticated before the change follow it at once, on any relay.
 */
export class AccountService {
  readonly #store: RelayStore;
  readonly #bus: EventBus;
  readonly #now: () => number;

  constructor(options: AccountServiceOptions) {
    this.#store = options.store;
    this.#bus = options.bus;
    this.#now = options.now;
  }

  /**
   * Revokes the API key with this hash. Every later request with it is refused by
   * authentication, and its open sockets close (4401) before this resolves.
   */
  async revokeKey(keyHash: string): Promise<void> {
    await this.#store.revokeKey(keyHash, this.#now());
    await this.#bus.publish({ type: 'credential-revoked', credential: keyHash });
  }

  /**
   * Sets a user's level; NotFound when there is no such user. The next request sees it, and the
   * user's live subscriptions are decided again at the new level before this resolves.
   */
  async setLevel(userId: string, level: Level): Promise<void> {
    if (!isLevel(level)) throw new SyncError('BadRequest', 'level must be 0, 1, 5 or 10');
    const id = parseUserId(userId);
    if (!(await this.#store.setUserLevel(id, level))) throw new SyncError('NotFound', `no user ${userId}`);
    await this.#bus.publish({ type: 'level-changed', userId: id, level });
  }
}
