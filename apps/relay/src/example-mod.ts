import { SyncError } from '@scopesync/core';
import type { ModContext, ModDefinition, ModHandle, RelayRuntime } from '@scopesync/relay';

/** Longest guestbook message, in characters. */
const MAX_MESSAGE = 280;
/** Entries the public summary shows. */
const SUMMARY_SIZE = 20;
/** Where the public summary lives. */
export const GUESTBOOK_DOC = 'PUBLIC_READ/_/guestbook';

/** One guestbook entry as the mod stores it. */
export interface GuestbookEntry {
  readonly author: string;
  readonly message: string;
  readonly at: number;
}

/**
 * An example mod (see docs/runtime.md): a guestbook. Entries live in the mod's own
 * `MOD_DATA/guestbook/entries` (read 0 / write 0: no client sees the raw list); the mod
 * publishes the newest ones to `PUBLIC_READ/_/guestbook` through the authoritative runtime,
 * where every client — guests too — reads them live. Run it with
 * `scopesync-relay start --example-mod`, or `createRelay({ mods: [new GuestbookMod()] })`.
 */
export class GuestbookMod implements ModDefinition {
  readonly name = 'guestbook';
  #mod: ModHandle | null = null;
  #runtime: RelayRuntime | null = null;

  /** Called by the relay when it starts: publishes what is stored. */
  async start({ mod, runtime }: ModContext): Promise<() => void> {
    this.#mod = mod;
    this.#runtime = runtime;
    await this.#publish(await this.entries());
    return () => {
      this.#mod = null;
      this.#runtime = null;
    };
  }

  /** The stored entries, oldest first. */
  async entries(): Promise<GuestbookEntry[]> {
    const stored = await this.#handles().mod.get('entries');
    return (stored?.value.entries as GuestbookEntry[] | undefined) ?? [];
  }

  /**
   * Adds an entry by `userId` and republishes the summary; resolves with the entry count.
   * The author's display name comes from their USER_PUBLIC profile, read *on their behalf*
   * (so it is decided with their permissions, and audited).
   */
  async sign(userId: string, message: string): Promise<number> {
    const { mod, runtime } = this.#handles();
    const text = message.trim().slice(0, MAX_MESSAGE);
    if (text === '') throw new SyncError('BadRequest', 'a guestbook message must not be empty');
    const profile = await runtime.getUserData({
      requestingUserId: userId,
      requestingUserLevel: 1,
      targetUserId: userId,
      scope: 'USER_PUBLIC',
      key: 'profile',
    });
    const author = typeof profile?.value.name === 'string' ? profile.value.name : userId;
    const entries = [...(await this.entries()), { author, message: text, at: Date.now() }];
    await mod.set('entries', { entries });
    await this.#publish(entries);
    return entries.length;
  }

  async #publish(entries: readonly GuestbookEntry[]): Promise<void> {
    // read 2: the system-owned summary is public; write 0: no client may edit it.
    await this.#handles().runtime.set(
      GUESTBOOK_DOC,
      { entries: entries.slice(-SUMMARY_SIZE), count: entries.length },
      { read: 2, write: 0 },
    );
  }

  #handles(): { mod: ModHandle; runtime: RelayRuntime } {
    if (!this.#mod || !this.#runtime) throw new SyncError('Unavailable', 'the guestbook mod is not running');
    return { mod: this.#mod, runtime: this.#runtime };
  }
}
