import { isLevel, type Level, parseUserId, type RelayStore, SyncError } from '@scopesync/core';
import { type AccessFence, NO_FENCE } from '../cluster/narrowing-fence.ts';
import { issueApiKey, parseDeviceName, type Registration } from '../credentials.ts';
import type { EventBus } from '../events/event-bus.ts';

/** Options of an {@link AccountService}. */
export interface AccountServiceOptions {
  readonly store: RelayStore;
  readonly bus: EventBus;
  /** Epoch milliseconds. */
  readonly now: () => number;
  /** Waited on after a key was revoked or a level set, so every relay enforces it; default none. */
  readonly fence?: AccessFence | undefined;
}

/** Options of {@link AccountService.issueKey}. */
export interface IssueKeyOptions {
  /** What the key is for (1–128 characters, no control characters); it names the key in the audit log. */
  readonly deviceName?: string | undefined;
}

/**
 * Changes to who a caller is: issuing and revoking API keys and changing a user's level. Each is an
 * event, so the sockets that authenticated before the change follow it at once, on any relay.
 */
export class AccountService {
  readonly #store: RelayStore;
  readonly #bus: EventBus;
  readonly #now: () => number;
  readonly #fence: AccessFence;

  constructor(options: AccountServiceOptions) {
    this.#store = options.store;
    this.#bus = options.bus;
    this.#now = options.now;
    this.#fence = options.fence ?? NO_FENCE;
  }

  /**
   * Issues a new API key for an existing user (another device of theirs, a server-side client);
   * the answer is the only copy of the key, the store keeps its hash. NotFound for an unknown
   * user, BadRequest for a malformed id or device name.
   */
  async issueKey(userId: string, options: IssueKeyOptions = {}): Promise<Registration> {
    const id = parseUserId(userId);
    if (options.deviceName !== undefined) parseDeviceName(options.deviceName);
    return issueApiKey(this.#store, id, this.#now());
  }

  /**
   * Revokes the API key with this hash. Every later request with it is refused by
   * authentication, and its open sockets close (4401) before this resolves.
   */
  async revokeKey(keyHash: string): Promise<void> {
    await this.#store.revokeKey(keyHash, this.#now());
    await this.revoked([keyHash]);
  }

  /**
   * Tells every relay that the keys with these hashes were revoked in the store (by a caller's
   * own transaction): their open sockets close (4401) before this resolves. The one path from a
   * revocation to the sockets, whoever revoked.
   */
  async revoked(keyHashes: readonly string[]): Promise<void> {
    if (keyHashes.length === 0) return;
    for (const keyHash of keyHashes) {
      await this.#bus.publish({ type: 'credential-revoked', credential: keyHash });
    }
    await this.#fence.settle();
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
    // A raise waits too: the event does not say which way the level moved.
    await this.#fence.settle();
  }
}
