import { type KeyValueStore, SyncError } from '@scopesync/core';
import type { Device, DeviceList } from '@scopesync/crypto';
import { sameBytes } from './base64.ts';
import { KV_TABLES } from './client-store.ts';
import type { KeyApi, PublicKeys, RotationStatement } from './key-api.ts';
import { loadCrypto } from './load-crypto.ts';
import { Emitter, type Unsubscribe } from './typed-events.ts';

/** A user's keys changed from the ones pinned: see {@link Trust}. */
export interface KeyChangedEvent {
  readonly userId: string;
  /** The keys this client pinned when it first saw the user. */
  readonly pinned: PublicKeys;
  /** The keys the relay publishes now. */
  readonly offered: PublicKeys;
  /**
   * True when the pinned key handed the user over to the offered keys in a chain of identity
   * rotations, each signed by the key it retired and countersigned by the next: the user moved
   * to a new identity (e.g. after losing a device). The pin then follows the chain by itself and
   * operations go on. False for an unexplained change: operations needing the user's keys fail
   * with `KeyChanged` until {@link Trust.accept}. Either way the app should tell its user: a
   * thief holding the old recovery phrase could also have rotated first (compare safety numbers).
   */
  readonly rotated: boolean;
}

/** What the relay was caught doing to an encrypted document's history or membership. */
export type TamperKind = 'gap' | 'replay' | 'fork' | 'rollback' | 'withheld' | 'forged';

/** Evidence that the relay (or a member) altered what this client was shown. */
export interface TamperEvent {
  readonly docName: string;
  readonly kind: TamperKind;
  readonly message: string;
}

/**
 * Following a member's verified identity rotation on an encrypted blob this user owns failed
 * (offline, the relay refused): the blob's keys are still sealed to the member's old box key, so
 * the member's new devices cannot open it yet. Tried again on the next trigger and on the next
 * follow sweep (when the client comes online: `client.encryption.followRotations()`).
 */
export interface FollowFailedEvent {
  readonly blobId: string;
  /** The member whose rotation was not followed. */
  readonly userId: string;
  readonly error: SyncError;
}

/** The events of {@link Trust} (also emitted by the client). */
export interface TrustEvents {
  'key-changed': KeyChangedEvent;
  tamper: TamperEvent;
  'follow-failed': FollowFailedEvent;
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
  /** Signing keys the user rotated away from, oldest first, as verified rotation statements showed. */
  readonly history?: readonly Uint8Array[] | undefined;
}

/** This user's own earlier signing keys, oldest first (table `keys`, record `own-history`). */
const OWN_HISTORY = 'own-history';

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

  /** Listens to `key-changed`, `tamper` or `follow-failed`; returns the function that stops listening. */
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
    const stored = await this.#stored(userId);
    const pinned = stored ? { signPublicKey: stored.sign, boxPublicKey: stored.box } : undefined;
    const { keys: offered, rotations } = await this.#init.api.userKeysAndRotations(userId);
    if (offered === undefined) {
      if (pinned) return pinned;
      throw new SyncError(
        'Conflict',
        `${userId} has no encryption keys registered yet: they must open scopesync with encryption once`,
      );
    }
    if (!pinned) {
      // First contact: trusted as published (TOFU), with the earlier keys a valid chain names, so
      // what the user signed before a rotation (member lists) still verifies.
      const earlier = (await followRotations(userId, undefined, rotations, offered)) ?? [];
      await this.#pin(userId, offered, earlier);
      return offered;
    }
    if (sameKeys(pinned, offered)) return pinned;
    const retired = await followRotations(userId, pinned.signPublicKey, rotations, offered);
    if (retired) {
      await this.#pin(userId, offered, [...(stored?.history ?? []), ...retired]);
      this.#events.emit('key-changed', { userId, pinned, offered, rotated: true });
      return offered;
    }
    return this.check(userId, offered);
  }

  /**
   * The signing keys of `userId`, oldest first, ending with the one trusted now: the keys a
   * verified chain of identity rotations retired, then the current key (this user's own, or the
   * pinned one; no network). Empty for a user never pinned.
   */
  async keyHistory(userId: string): Promise<Uint8Array[]> {
    const self = await this.#init.self();
    if (userId === self.userId) {
      const own = (await this.#init.kv.get<Uint8Array[]>(KV_TABLES.keys, OWN_HISTORY)) ?? [];
      return [...own, self.keys.signPublicKey];
    }
    const stored = await this.#stored(userId);
    return stored ? [...(stored.history ?? []), stored.sign] : [];
  }

  /**
   * @internal Learns this user's own earlier keys from the relay's rotation chain (a device
   * that starts after a rotation): kept when the chain verifies and ends at our own key. Once
   * known (even as none), not asked again; {@link recordOwnRotation} extends it.
   */
  async loadOwnHistory(): Promise<void> {
    if ((await this.#init.kv.get(KV_TABLES.keys, OWN_HISTORY)) !== undefined) return;
    const self = await this.#init.self();
    const { rotations } = await this.#init.api.userKeysAndRotations(self.userId);
    const earlier = (await followRotations(self.userId, undefined, rotations, self.keys)) ?? [];
    await this.#init.kv.put(KV_TABLES.keys, OWN_HISTORY, earlier);
  }

  /** @internal This user rotated away from `retired`: it joins the own key history. */
  async recordOwnRotation(retired: Uint8Array): Promise<void> {
    const own = (await this.#init.kv.get<Uint8Array[]>(KV_TABLES.keys, OWN_HISTORY)) ?? [];
    await this.#init.kv.put(KV_TABLES.keys, OWN_HISTORY, [...own, retired]);
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
    const stored = await this.#stored(userId);
    if (!stored) {
      await this.#pin(userId, seen);
      return seen;
    }
    const pinned = { signPublicKey: stored.sign, boxPublicKey: stored.box };
    if (sameKeys(pinned, seen)) return pinned;
    await this.#init.kv.put(KV_TABLES.keys, pinKey(userId), {
      ...stored,
      offered: { sign: seen.signPublicKey, box: seen.boxPublicKey },
    } satisfies StoredPin);
    this.#events.emit('key-changed', { userId, pinned, offered: seen, rotated: false });
    throw new SyncError(
      'KeyChanged',
      `${userId}'s keys changed since this device pinned them: compare safety numbers, then client.trust.accept('${userId}')`,
    );
  }

  /** The keys pinned for `userId`, without asking the relay; undefined when none are. */
  async pinned(userId: string): Promise<PublicKeys | undefined> {
    const stored = await this.#stored(userId);
    return stored ? { signPublicKey: stored.sign, boxPublicKey: stored.box } : undefined;
  }

  #stored(userId: string): Promise<StoredPin | undefined> {
    return this.#init.kv.get<StoredPin>(KV_TABLES.keys, pinKey(userId));
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
    // Accepted by hand: the keys before it are no longer the user's as far as we know.
    await this.#pin(
      userId,
      next,
      stored && !sameBytes(stored.sign, next.signPublicKey) ? [] : stored?.history,
    );
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

  /**
   * The devices of `userId` (this user's own included) from their signed device list: every
   * version verified against the user's identity keys as pinned here (following signed
   * rotations), and extending the chain this client saw before. A shorter or different chain is
   * refused (Forbidden, with a `tamper` event `rollback` / `fork` on `users/<id>/devices`): a relay
   * cannot bring back a removed device. Empty when the user published none.
   */
  async devicesOf(userId: string): Promise<readonly Device[]> {
    return (await this.deviceChain(userId)).latest?.devices ?? [];
  }

  /** @internal {@link devicesOf}, with the served versions' bytes (to sign the next one on). */
  async deviceChain(userId: string): Promise<{ lists: Uint8Array[]; latest: DeviceList | undefined }> {
    const self = await this.#init.self();
    if (userId === self.userId) await this.loadOwnHistory().catch(() => undefined);
    else await this.keysOf(userId);
    const keys = await this.keyHistory(userId);
    const lists = await this.#init.api.deviceLists(userId);
    const { verifyDeviceListChain } = await loadCrypto();
    const docName = `users/${userId}/devices`;
    let chain: DeviceList[];
    try {
      chain = verifyDeviceListChain(lists, keys, userId);
    } catch (error) {
      if (error instanceof SyncError && error.kind === 'Forbidden') {
        this.reportTamper({ docName, kind: 'forged', message: `device list: ${error.message}` });
      }
      throw error;
    }
    const record = `devices:${userId}`;
    const seen = await this.#init.kv.get<{ version: number; hash: Uint8Array }>(KV_TABLES.keys, record);
    if (seen) {
      const same = chain[seen.version - 1];
      if (!same) {
        const message = `the relay serves device list version ${chain.length}, older than version ${seen.version} seen before`;
        this.reportTamper({ docName, kind: 'rollback', message });
        throw new SyncError('Forbidden', `rollback: ${message}`);
      }
      if (!sameBytes(same.hash, seen.hash)) {
        const message = `device list version ${seen.version} differs from the one seen before`;
        this.reportTamper({ docName, kind: 'fork', message });
        throw new SyncError('Forbidden', `fork: ${message}`);
      }
    }
    const latest = chain.at(-1);
    if (latest)
      await this.#init.kv.put(KV_TABLES.keys, record, { version: latest.version, hash: latest.hash });
    return { lists, latest };
  }

  /** @internal Reports tamper evidence found by a document's cipher. */
  reportTamper(event: TamperEvent): void {
    this.#events.emit('tamper', event);
  }

  /** @internal Reports a member's rotation this client could not follow on a blob it owns. */
  reportFollowFailed(event: FollowFailedEvent): void {
    this.#events.emit('follow-failed', event);
  }

  async #pin(userId: string, keys: PublicKeys, history?: readonly Uint8Array[]): Promise<void> {
    const record: StoredPin = {
      v: 1,
      sign: keys.signPublicKey,
      box: keys.boxPublicKey,
      ...(history && history.length > 0 ? { history } : {}),
    };
    await this.#init.kv.put(KV_TABLES.keys, pinKey(userId), record);
  }
}

function sameKeys(a: PublicKeys, b: PublicKeys): boolean {
  return sameBytes(a.signPublicKey, b.signPublicKey) && sameBytes(a.boxPublicKey, b.boxPublicKey);
}

function pinKey(userId: string): string {
  return `pin:${userId}`;
}

/**
 * The signing keys a chain of identity rotations retired on the way from `from` (undefined: from
 * the chain's start) to `to`, oldest first; undefined when the relay's statements do not make such
 * a chain. Each statement must be for `userId`, signed by the key it retires and countersigned by
 * the next, and follow the one before (its new key is the next one's old key).
 */
async function followRotations(
  userId: string,
  from: Uint8Array | undefined,
  rotations: readonly RotationStatement[],
  to: PublicKeys,
): Promise<Uint8Array[] | undefined> {
  const start = from === undefined ? 0 : rotations.findIndex((r) => sameBytes(r.oldSignPk, from));
  if (start < 0 || start >= rotations.length) return from === undefined ? [] : undefined;
  const { verifyIdentityRotation, verifyIdentityRotationCountersignature } = await loadCrypto();
  const retired: Uint8Array[] = [];
  let previous: RotationStatement | undefined;
  for (const r of rotations.slice(start)) {
    const statement = { ...r, userId };
    if (previous && !sameBytes(previous.newSignPk, r.oldSignPk)) return undefined;
    if (!verifyIdentityRotation(statement, r.signature)) return undefined;
    if (!verifyIdentityRotationCountersignature(statement, r.countersignature)) return undefined;
    retired.push(r.oldSignPk);
    previous = r;
  }
  if (
    !previous ||
    !sameBytes(previous.newSignPk, to.signPublicKey) ||
    !sameBytes(previous.newBoxPk, to.boxPublicKey)
  )
    return undefined;
  return retired;
}
