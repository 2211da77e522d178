import type { Locks } from '@scopesync/core';
import {
  type BlobAddress,
  type RelayStore,
  type ShareLevel,
  type ShareRecord,
  SyncError,
  type UserId,
} from '@scopesync/core';
import type { UserCaller } from '../access-control.ts';
import { type AccessFence, NO_FENCE } from '../cluster/narrowing-fence.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { ObjectService } from './object-service.ts';

/** A share granted to the caller, with the blob's owner. */
export interface IncomingShare extends ShareRecord {
  readonly owner: string;
}

/** Options of a {@link ShareService}. */
export interface ShareServiceOptions {
  readonly store: RelayStore;
  readonly bus: EventBus;
  readonly locks: Locks;
  readonly objects: ObjectService;
  /** Epoch milliseconds. */
  readonly now: () => number;
  /** Waited on after a share was revoked or lowered, so every relay enforces it; default none. */
  readonly fence?: AccessFence | undefined;
}

/**
 * Blob shares. Only the owner shares and revokes (core's `decide()`); the owner and sharees
 * list. Every change is an `access-changed` event, handled by every subscription of the blob
 * before the call returns: a revoked sharee's socket has lost the blob when the owner hears 204
 * — on this relay at once, and on the others (several relays) through the fence: each has
 * heard of it or no longer delivers without asking the store.
 */
export class ShareService {
  readonly #store: RelayStore;
  readonly #bus: EventBus;
  readonly #locks: Locks;
  readonly #objects: ObjectService;
  readonly #now: () => number;
  readonly #fence: AccessFence;

  constructor(options: ShareServiceOptions) {
    this.#store = options.store;
    this.#bus = options.bus;
    this.#locks = options.locks;
    this.#objects = options.objects;
    this.#now = options.now;
    this.#fence = options.fence ?? NO_FENCE;
  }

  /** Grants (or changes) `userId`'s access to the blob. */
  async share(
    caller: UserCaller,
    address: BlobAddress,
    userId: UserId,
    level: ShareLevel,
  ): Promise<ShareRecord> {
    if (userId === caller.userId) throw new SyncError('BadRequest', 'you cannot share a blob with yourself');
    let lowered = false;
    const granted = await this.#locks.run(address.name, async () => {
      await this.#objects.require(caller, 'share', address, 'http');
      if (!(await this.#store.getUser(userId))) throw new SyncError('NotFound', `no user ${userId}`);
      const before = (await this.#store.listShares(address.blobId)).find((s) => s.userId === userId);
      lowered = before?.level === 'read_write' && level === 'read_only';
      const share: ShareRecord = {
        blobId: address.blobId,
        userId,
        level,
        grantedBy: caller.userId,
        grantedAt: this.#now(),
      };
      await this.#store.putShare(share);
      // A downgrade (read_write → read_only) must reach a live socket too.
      await this.#bus.publish({ type: 'access-changed', name: address.name, cause: 'share' });
      return share;
    });
    // A grant narrows nothing; a downgrade waits (outside the lock) until every relay enforces it.
    if (lowered) await this.#fence.settle();
    return granted;
  }

  /** Revokes `userId`'s share; NotFound when there was none. */
  async revoke(caller: UserCaller, address: BlobAddress, userId: UserId): Promise<void> {
    await this.#locks.run(address.name, async () => {
      await this.#objects.require(caller, 'share', address, 'http');
      if (!(await this.#store.deleteShare(address.blobId, userId))) {
        throw new SyncError('NotFound', `no share with ${userId}`);
      }
      await this.#bus.publish({ type: 'access-changed', name: address.name, cause: 'share' });
    });
    // Outside the lock: answered once every relay enforces it (heard of it, or asks the store).
    await this.#fence.settle();
  }

  /**
   * The blobs shared with the caller ("shared with me"), each with its owner, by blob id. Only
   * the caller's own shares: nothing here is someone else's to see, so nothing is audited.
   */
  async incoming(caller: UserCaller): Promise<IncomingShare[]> {
    const shares = await this.#store.listSharesOfUser(caller.userId);
    const incoming: IncomingShare[] = [];
    for (const share of shares) {
      // Shares go with their blob: one without an object is a race with its deletion.
      const object = await this.#store.getObject(`blob/${share.blobId}`);
      if (object) incoming.push({ ...share, owner: object.owner });
    }
    return incoming;
  }

  /** The blob's shares, for its owner and sharees. */
  async list(caller: UserCaller, address: BlobAddress): Promise<ShareRecord[]> {
    await this.#objects.require(caller, 'list', address, 'http');
    return this.#store.listShares(address.blobId);
  }
}
