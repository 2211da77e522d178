import type { Locks } from '@scopesync/core';
import {
  type BlobAddress,
  type Caller,
  isSyncError,
  type ObjectRecord,
  type RelayStore,
  SyncError,
  type UserId,
} from '@scopesync/core';
import type { AccessControl, UserCaller } from '../access-control.ts';
import type { EventBus } from '../events/event-bus.ts';
import { couldCreate } from './existence.ts';
import type { ObjectService } from './object-service.ts';

/** The request header that creates a blob end-to-end encrypted on `PUT /blob/<id>`. */
export const ENCRYPTED_HEADER = 'x-scopesync-encrypted';

/** A raw-bytes write of a blob. */
export interface BlobBytesWrite {
  readonly data: Uint8Array;
  /** The version the caller last saw (0: must not exist yet); undefined writes unconditionally. */
  readonly ifVersion?: number | undefined;
  /** Whether the blob is (to be) end-to-end encrypted; must match an existing blob's mode. */
  readonly encrypted: boolean;
}

/** Options of a {@link BlobService}. */
export interface BlobServiceOptions {
  readonly access: AccessControl;
  readonly store: RelayStore;
  readonly bus: EventBus;
  readonly locks: Locks;
  readonly objects: ObjectService;
  /** Epoch milliseconds. */
  readonly now: () => number;
}

/**
 * The raw-bytes use cases of blobs (a blob's collaborative document goes through the sync
 * endpoints): put with versions, get, metadata. Creating a blob is an access change like any
 * other: subscriptions opened before it existed are decided again before the call returns.
 */
export class BlobService {
  readonly #access: AccessControl;
  readonly #store: RelayStore;
  readonly #bus: EventBus;
  readonly #locks: Locks;
  readonly #objects: ObjectService;
  readonly #now: () => number;

  constructor(options: BlobServiceOptions) {
    this.#access = options.access;
    this.#store = options.store;
    this.#bus = options.bus;
    this.#locks = options.locks;
    this.#objects = options.objects;
    this.#now = options.now;
  }

  /** Stores new raw bytes (If-Match versions; creating the blob on the first put). Resolves with its metadata. */
  put(
    caller: Caller & { kind: 'user'; userId: UserId },
    address: BlobAddress,
    write: BlobBytesWrite,
  ): Promise<ObjectRecord> {
    return this.#locks.run(address.name, async () => {
      await this.#requireWrite(caller, address, write.ifVersion);
      const existing = await this.#store.getObject(address.name);
      if (existing && existing.encrypted !== write.encrypted) {
        // Plaintext bytes must never land in an encrypted blob, nor sealed ones pass for plaintext.
        throw new SyncError(
          'BadRequest',
          existing.encrypted
            ? `this blob is end-to-end encrypted: PUT its sealed bytes with ${ENCRYPTED_HEADER}: 1`
            : `this blob is not end-to-end encrypted: PUT it without ${ENCRYPTED_HEADER}`,
        );
      }
      const now = this.#now();
      // Created together with the bytes, in one transaction: a refused If-Match leaves nothing behind.
      const create = this.#access.newObject(caller, address, { encrypted: write.encrypted }, now);
      const record = await this.#store.putBlobData(address.name, {
        data: write.data,
        expectedVersion: write.ifVersion,
        create,
        now,
      });
      if (!existing)
        await this.#bus.publish({ type: 'access-changed', name: address.name, cause: 'created' });
      return record;
    });
  }

  /**
   * Refuses, before the body of a put is read, a put the caller may not make — with the answer
   * the put itself would give (audited). An unaudited probe first, so allowed puts cost nothing.
   */
  async refuseBeforeBody(caller: Caller, address: BlobAddress, ifVersion: number | undefined): Promise<void> {
    const { decision } = await this.#access.check(caller, 'write', address, { audit: false });
    if (!decision.allowed) await this.#requireWrite(caller, address, ifVersion);
  }

  /** Decides a put (audited); a blob hidden from the caller answers a conditional put like an absent one. */
  async #requireWrite(caller: Caller, address: BlobAddress, ifVersion: number | undefined): Promise<void> {
    try {
      await this.#objects.require(caller, 'write', address, 'http');
    } catch (error) {
      // "Version is 0", as for an absent blob: only an attempt that would have created the blob
      // learns that the id is taken.
      const conditional = ifVersion !== undefined && ifVersion !== 0;
      if (conditional && isSyncError(error) && error.kind === 'NotFound' && couldCreate(caller, address))
        throw new SyncError('PreconditionFailed', `version is 0, not ${ifVersion}`);
      throw error;
    }
  }

  /** The raw bytes and metadata of a blob the caller may read; NotFound when it has no raw bytes. */
  async get(caller: Caller, address: BlobAddress): Promise<{ record: ObjectRecord; data: Uint8Array }> {
    await this.#objects.require(caller, 'read', address, 'http');
    const [record, data] = await Promise.all([
      this.#store.getObject(address.name),
      this.#store.getBlobData(address.name),
    ]);
    if (!record || !data) {
      throw new SyncError('NotFound', 'the blob has no raw bytes (it may be a collaborative document)');
    }
    return { record, data };
  }

  /**
   * A page of the blobs the caller owns ("my blobs"), by blob id after `after`: only the
   * caller's own, so nothing here is someone else's to see and nothing is audited.
   */
  async listOwned(caller: UserCaller, after: string | undefined, limit: number): Promise<ObjectRecord[]> {
    return this.#store.listObjectsOfOwner(caller.userId, {
      prefix: 'blob/',
      after: after === undefined ? undefined : `blob/${after}`,
      limit,
    });
  }

  /** The metadata of a blob the caller may read. */
  async meta(caller: Caller, address: BlobAddress): Promise<ObjectRecord> {
    await this.#objects.require(caller, 'read', address, 'http');
    const record = await this.#store.getObject(address.name);
    if (!record) throw new SyncError('NotFound', 'not found');
    return record;
  }
}
