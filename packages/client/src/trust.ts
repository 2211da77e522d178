import { type KeyValueStore, SyncError } from '@scopesync/core';
import { sameBytes } from './base64.ts';
import { KV_TABLES } from './client-store.ts';
import type { KeyApi, PublicKeys } from './key-api.ts';
import { loadCrypto } from './load-crypto.ts';
import { Emitter, type Unsubscribe } from './typed-events.ts';

/** A user's keys changed from the ones pinned: see {@link Trust}. */
export interface KeyChangedEvent {
  readonly userId: string;
  /** The keys this client pinned when it first saw the user. */
  readonly pinned: PublicKeys;
  /** The keys the relay publishes now. */
  readonly offered: PublicKeys;
}

/** What the relay was caught doing to an encrypted document's history or membership. */
export type TamperKind = 'gap' | 'replay' | 'fork' | 'rollback' | 'withheld' | 'forged';

/** Evidence that the relay (or a member) altered what this client was shown. */
export interface TamperEvent {
  readonly docName: string;
  readonly kind: TamperKind;
  readonly message: string;
}

/** The events of {@link Trust} (also emitted by the client). */
export interface TrustEvents {
  'key-changed': KeyChangedEvent;
  tamper: TamperEvent;
}

/** What {@link Trust} needs from its client. */
export interface TrustInit {
  readonly kv: KeyValueStore;
  readonly api: KeyApi;
  /** This user's id and public keys (for safety numbers). */
  readonly self: () => Promise<{ readonly userId: string; readonly keys: PublicKeys }>;
}

/** A pinned user's keys as stored (table `keys`, record `pin:<user id>`); public values only. */
interface StoredPin {
  readonly v: 1;
  readonly sign: Uint8Array;
  readonly box: Uint8Array;
  /** Keys the relay offered that differ from the pin, until the app accepts them. */
  readonly offered?: { readonly sign: Uint8Array; readonly box: Uint8Array } | undefined;
}

/**
 * Whom this client trusts for shared encrypted blobs: `client.trust`.
 *
 * Every other user's signing and box keys are pinned the first time this client sees them (trust
 * on first use) and kept in the local store. When the relay later publishes different keys, that
 * is never silent: a `key-changed` event fires and every operation needing that user's keys
 * (sharing with them, accepting a member list they own) fails with `KeyChanged` until the app
 * calls {@link accept} — ideally after the two people compared {@link safetyNumber}s. Tamper
 * evidence found while reading encrypted documents (gaps, replays, forks, rollbacks) is reported
 * as `tamper` events.
 */
export class Trust {
  readonly #init: TrustInit;
  readonly #events = new Emitter<TrustEvents>();

  /** @internal Created by the client. */
  constructor(init: TrustInit) {
    this.#init = init;
  }

  /** Listens to `key-changed` or `tamper`; returns the function that stops listening. */
  on<K extends keyof TrustEvents>(event: K, listener: (value: TrustEvents[K]) => void): Unsubscribe {
    return this.#events.on(event, listener);
  }

  /**
   * The keys of `userId` this client trusts: the pinned ones, checked against what the relay
   * publishes now. The first time, the relay's keys are pinned. KeyChanged (and a `key-changed`
   * event) when the relay publishes others; Conflict when the user has no keys registered.
   */
  async keysOf(userId: string): Promise<PublicKeys> {
    const self = await this.#init.self();
    if (userId === self.userId) return self.keys;
    const pinned = await this.pinned(userId);
    const offered = await this.#init.api.userKeys(userId);
    if (offered === undefined) {
      if (pinned) return pinned;
      throw new SyncError(
        'Conflict',
        `${userId} has no encryption keys registered yet: they must open scopesync with encryption once`,
      );
    }
    if (!pinned) {
      await this.#pin(userId, offered);
      return offered;
    }
    return this.check(userId, offered);
  }

  /**
   * Checks keys seen elsewhere (e.g. in an owner-signed member list) against the pin of
   * `userId`, pinning them when there is none. KeyChanged when they differ.
   */
  async check(userId: string, seen: PublicKeys): Promise<PublicKeys> {
    const self = await this.#init.self();
    if (userId === self.userId) {
      if (!sameKeys(seen, self.keys)) {
        throw new SyncError('KeyChanged', `keys presented as yours (${userId}) are not your keys`);
      }
      return self.keys;
    }
    const pinned = await this.pinned(userId);
    if (!pinned) {
      await this.#pin(userId, seen);
      return seen;
    }
    if (sameKeys(pinned, seen)) return pinned;
    await this.#init.kv.put(KV_TABLES.keys, pinKey(userId), {
      v: 1,
      sign: pinned.signPublicKey,
      box: pinned.boxPublicKey,
      offered: { sign: seen.signPublicKey, box: seen.boxPublicKey },
    });
    this.#events.emit('key-changed', { userId, pinned, offered: seen });
    throw new SyncError(
      'KeyChanged',
      `${userId}'s keys changed since this device pinned them: compare safety numbers, then client.trust.accept('${userId}')`,
    );
  }

  /** The keys pinned for `userId`, without asking the relay; undefined when none are. */
  async pinned(userId: string): Promise<PublicKeys | undefined> {
    const stored = await this.#init.kv.get<StoredPin>(KV_TABLES.keys, pinKey(userId));
    return stored ? { signPublicKey: stored.sign, boxPublicKey: stored.box } : undefined;
  }

  /**
   * Trusts the keys `userId` now has (those the last `key-changed` offered, else the relay's
   * current ones): call after the users compared safety numbers. Resolves with them.
   */
  async accept(userId: string): Promise<PublicKeys> {
    const stored = await this.#init.kv.get<StoredPin>(KV_TABLES.keys, pinKey(userId));
    let next: PublicKeys | undefined = stored?.offered
      ? { signPublicKey: stored.offered.sign, boxPublicKey: stored.offered.box }
      : await this.#init.api.userKeys(userId);
    if (next === undefined) throw new SyncError('NotFound', `${userId} has no keys to accept`);
    await this.#pin(userId, next);
    next = { ...next };
    return next;
  }

  /**
   * The safety number of this user and `userId`: six groups of five digits, the same on both
   * sides. Read them to each other out of band: equal numbers mean neither key was substituted.
   * Uses the pinned keys (pinning them first when needed); KeyChanged when they changed.
   */
  async safetyNumber(userId: string): Promise<string> {
    const self = await this.#init.self();
    const them = await this.keysOf(userId);
    const { safetyNumber } = await loadCrypto();
    return safetyNumber(
      { userId: self.userId, ...self.keys },
      { userId, signPublicKey: them.signPublicKey, boxPublicKey: them.boxPublicKey },
    );
  }

  /** @internal Reports tamper evidence found by a document's cipher. */
  reportTamper(event: TamperEvent): void {
    this.#events.emit('tamper', event);
  }

  async #pin(userId: string, keys: PublicKeys): Promise<void> {
    await this.#init.kv.put(KV_TABLES.keys, pinKey(userId), {
      v: 1,
      sign: keys.signPublicKey,
      box: keys.boxPublicKey,
    });
  }
}

function sameKeys(a: PublicKeys, b: PublicKeys): boolean {
  return sameBytes(a.signPublicKey, b.signPublicKey) && sameBytes(a.boxPublicKey, b.boxPublicKey);
}

function pinKey(userId: string): string {
  return `pin:${userId}`;
}
