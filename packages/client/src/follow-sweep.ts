import type { KeyValueStore } from '@scopesync/core';
import { asSyncError } from './as-sync-error.ts';
import { requireStoredKey } from './doc-key-record.ts';
import type { DocKeys } from './doc-keys.ts';
import type { KeyApi } from './key-api.ts';
import { followRotation, learnKeys } from './rotation-follow.ts';
import type { FollowFailedEvent, Trust } from './trust.ts';

// The follow sweep (docs/encryption.md, "Per-device keys", step 4): an owner whose client opens
// nothing and receives nothing still follows a member's signed identity rotation, because on
// coming online the client looks through the encrypted blobs it owns for member list entries
// whose keys a verified rotation retired. The follow itself is `rotation-follow.ts`'s, the same
// as for every other trigger; this module only finds the blobs and members to ask about.

/** What {@link FollowSweep} needs from the client's encryption. */
export interface FollowSweepContext {
  readonly kv: KeyValueStore;
  readonly api: KeyApi;
  readonly trust: Trust;
  /** This user's id (the owner's). */
  readonly userId: string;
  /** A doc's keys (loaded once, shared with open handles). */
  docKeys(docName: string): Promise<DocKeys>;
}

/** What one sweep did: `client.encryption.followRotations()`. */
export interface FollowSweepResult {
  /** Owned encrypted blobs looked at in this sweep (at most {@link MAX_BLOBS_PER_SWEEP}). */
  readonly checked: number;
  /** Rotations followed: the blob's keys sealed to the member's new keys, the list re-signed. */
  readonly followed: readonly { readonly blobId: string; readonly userId: string }[];
  /** Follows that failed (also emitted as `follow-failed`): the next sweep tries them again. */
  readonly failed: readonly FollowFailedEvent[];
  /**
   * True when every owned blob was looked at and nothing was left for later: no follow failed,
   * no blob or member's keys were out of reach. A sweep on coming online is skipped for a while
   * after a complete one ({@link SWEEP_AGAIN_AFTER_MS}).
   */
  readonly complete: boolean;
}

/** Blobs one sweep looks at; the next sweep goes on from where this one stopped. */
export const MAX_BLOBS_PER_SWEEP = 100;

/**
 * After a complete sweep, coming online again sweeps only once this long has passed: a flapping
 * connection must not repeat the sweep's requests at every reconnect.
 */
export const SWEEP_AGAIN_AFTER_MS = 60_000;

/**
 * Sweeps the encrypted blobs this user owns (`GET /blobs/mine`) for members who rotated their
 * identity, and follows each rotation this client verifies. Bounded: one sweep at a time, at
 * most {@link MAX_BLOBS_PER_SWEEP} blobs (one member list request each, and for a blob this
 * device never opened the requests that load its keys), and one key-chain request per distinct
 * member. An unexplained key change is never followed: that waits for the app.
 */
export class FollowSweep {
  readonly #ctx: FollowSweepContext;
  #running: Promise<FollowSweepResult> | undefined;
  /** The last blob id looked at: the next sweep starts after it. */
  #cursor: string | undefined;
  /** When the last complete sweep ended (Date.now()). */
  #completeAt: number | undefined;

  constructor(ctx: FollowSweepContext) {
    this.#ctx = ctx;
  }

  /** The user whose owned blobs this sweeps. */
  get userId(): string {
    return this.#ctx.userId;
  }

  /** The sweep under way, if any. */
  get running(): Promise<FollowSweepResult> | undefined {
    return this.#running;
  }

  /** Sweeps now, or joins the sweep under way. Rejects when the owned blobs cannot be listed (offline). */
  run(): Promise<FollowSweepResult> {
    this.#running ??= this.#sweep().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /**
   * The client came online: sweeps, unless a complete sweep ended less than
   * {@link SWEEP_AGAIN_AFTER_MS} ago. Undefined when skipped.
   */
  onOnline(): Promise<FollowSweepResult | undefined> {
    if (this.#running) return this.#running;
    if (this.#completeAt !== undefined && Date.now() - this.#completeAt < SWEEP_AGAIN_AFTER_MS) {
      return Promise.resolve(undefined);
    }
    return this.run();
  }

  async #sweep(): Promise<FollowSweepResult> {
    const { api, kv, trust, userId } = this.#ctx;
    const owned = await api.ownedEncryptedBlobs();
    const batch = nextBatch(owned, this.#cursor, MAX_BLOBS_PER_SWEEP);
    let complete = batch.length === owned.length;
    this.#cursor = batch.at(-1);

    // Each blob's latest member list, as the relay has it now.
    const blobs: DocKeys[] = [];
    for (const blobId of batch) {
      const name = `blob/${blobId}`;
      try {
        // A blob whose key never reached the relay is not loaded: that would make a fresh key.
        await requireStoredKey(kv, api, name);
        const keys = await this.#ctx.docKeys(name);
        if (!keys.isOwner) continue;
        await keys.refreshMembers();
        blobs.push(keys);
      } catch {
        complete = false; // out of reach now (offline, no stored key, tampered list: reported)
      }
    }

    // One key-chain request per distinct member: a verified rotation moves the pin.
    const asked = new Set<string>([userId]);
    const trusted = new Set<string>();
    for (const keys of blobs) {
      for (const { userId: member } of keys.members?.members ?? []) {
        if (asked.has(member)) continue;
        asked.add(member);
        try {
          const learned = await learnKeys(trust, member);
          if (learned === 'ok') trusted.add(member);
          else if (learned === 'Unavailable') complete = false;
          // KeyChanged: unexplained, never followed (the app decides).
        } catch {
          // No keys to follow (none registered, no such user).
        }
      }
    }

    const followed: { blobId: string; userId: string }[] = [];
    const failed: FollowFailedEvent[] = [];
    for (const keys of blobs) {
      if (keys.address.kind !== 'blob') continue;
      const blobId = keys.address.blobId;
      for (const { userId: member } of keys.members?.members ?? []) {
        if (!trusted.has(member)) continue;
        try {
          if (await followRotation(keys, trust, member)) followed.push({ blobId, userId: member });
        } catch (error) {
          // Reported by followRotation (`follow-failed`).
          failed.push({ blobId, userId: member, error: asSyncError(error, 'Internal', 'follow failed') });
          complete = false;
        }
      }
    }
    this.#completeAt = complete ? Date.now() : undefined;
    return { checked: batch.length, followed, failed, complete };
  }
}

/**
 * Up to `max` of `ids`, starting after `cursor` (from the start when it is undefined or gone)
 * and wrapping around, so that successive sweeps look at every blob in turn.
 */
export function nextBatch(ids: readonly string[], cursor: string | undefined, max: number): string[] {
  if (ids.length <= max) return [...ids];
  const start = cursor === undefined ? 0 : ids.indexOf(cursor) + 1;
  return [...ids.slice(start), ...ids.slice(0, start)].slice(0, max);
}
