import { type RelayStore, type RelayStoreTx, SyncError } from '@scopesync/core';
import {
  checkDeviceListStep,
  type DeviceList,
  readDeviceList,
  ready,
  verifyDeviceList,
} from '@scopesync/crypto';
import type { AuditLog } from '../audit-log.ts';
import { publicKeyBytes } from '../credentials.ts';
import type { AccountService } from './account-service.ts';

// A user's signed device list (docs/encryption.md, "Per-device keys") and what it decides on
// the relay: an API key registered for a device stops working when a version drops the device.

/** Options of a {@link DeviceListService}. */
export interface DeviceListServiceOptions {
  readonly store: RelayStore;
  /** How revoked keys reach the sockets that use them. */
  readonly accounts: AccountService;
  readonly audit: AuditLog;
  /** Epoch milliseconds. */
  readonly now: () => number;
}

/** What appending a device list version did. */
export interface AppendedDeviceList {
  readonly version: number;
  /** The devices this version dropped from the one before. */
  readonly removed: readonly string[];
  /** How many API keys it revoked (keys registered for a dropped device). */
  readonly revokedKeys: number;
}

/**
 * Appends users' device list versions and revokes, in the same transaction, the API keys of
 * every device a version drops: a lost device stops syncing the moment another device signs a
 * list without it, no identity rotation needed (when the thief does not hold the seed).
 */
export class DeviceListService {
  readonly #store: RelayStore;
  readonly #accounts: AccountService;
  readonly #audit: AuditLog;
  readonly #now: () => number;

  constructor(options: DeviceListServiceOptions) {
    this.#store = options.store;
    this.#accounts = options.accounts;
    this.#audit = options.audit;
    this.#now = options.now;
  }

  /**
   * Stores `bytes` as the next version of `userId`'s device list: signed by the user's
   * registered identity key, for this user, version + 1 chaining the stored last one (Forbidden
   * otherwise; Conflict without a registered key, when a concurrent append took the version, or
   * when it lists a device that an earlier version dropped). Every unrevoked key of the user
   * registered for a device listed before but not in this version is revoked with it, and an
   * audit entry names the dropped devices; the revoked keys' sockets close before this resolves.
   */
  async append(userId: string, bytes: Uint8Array): Promise<AppendedDeviceList> {
    await ready();
    let revoked: string[] = [];
    const appended = await this.#store.transaction(async (tx) => {
      // A transaction may run again (PostgreSQL retries a serialization failure): start over.
      revoked = [];
      const identityKey = publicKeyBytes((await tx.getUser(userId))?.signPk ?? null);
      if (!identityKey) {
        throw new SyncError(
          'Conflict',
          `no signing key is registered for ${userId}: register one with PUT /users/${userId}/keys`,
        );
      }
      const list = verifyDeviceList(bytes, identityKey, userId);
      const before = (await tx.listDeviceLists(userId)).map((record) => readDeviceList(record.list));
      checkDeviceListStep(before.at(-1), list);
      const gone = removedDevices(before);
      const back = list.devices.find((d) => gone.has(d.deviceId));
      if (back) {
        // Its keys were revoked when it was dropped; listing it again would name a dead device.
        throw new SyncError(
          'Conflict',
          `device ${back.deviceId} was removed from the device list: a removed device does not come back (a found device joins again under a new id)`,
        );
      }
      const now = this.#now();
      if (!(await tx.appendDeviceList({ userId, version: list.version, list: bytes, createdAt: now }))) {
        throw new SyncError('Conflict', `device list version ${list.version} exists`);
      }
      const dropped = removedDevices([...before, list]);
      for (const key of await tx.listKeys(userId)) {
        if (key.revokedAt !== null || key.deviceId === undefined || !dropped.has(key.deviceId)) continue;
        await tx.revokeKey(key.keyHash, now);
        revoked.push(key.keyHash);
      }
      const listed = new Set(list.devices.map((d) => d.deviceId));
      const removed = (before.at(-1)?.devices ?? []).map((d) => d.deviceId).filter((id) => !listed.has(id));
      if (removed.length > 0 || revoked.length > 0) {
        await this.#audit.record(
          {
            accessor: userId,
            target: userId,
            scope: 'account',
            key: 'devices',
            action: 'remove-devices',
            result: 'ok',
            channel: 'http',
            reason: `device list version ${list.version} removes ${removed.join(', ') || 'no device'}: ${revoked.length} API key(s) revoked`,
          },
          tx,
        );
      }
      return { version: list.version, removed };
    });
    // After the commit: the one path from a revocation to the sockets, on every relay.
    await this.#accounts.revoked(revoked);
    return { ...appended, revokedKeys: revoked.length };
  }

  /**
   * Binds `userId`'s API key `keyHash` to device `deviceId`, once: for a key registered without
   * naming its device (before keys did). The same device again changes nothing. Conflict when
   * the key is bound to another device, or the device was removed from the list; Unauthorized
   * when the key is not a valid key of this user.
   */
  async bindKey(userId: string, keyHash: string, deviceId: string): Promise<void> {
    await this.#store.transaction(async (tx) => {
      const key = await tx.getKey(keyHash);
      if (!key || key.userId !== userId || key.revokedAt !== null) {
        throw new SyncError('Unauthorized', 'only a valid API key of this user is bound to a device');
      }
      if (key.deviceId === deviceId) return;
      if (key.deviceId !== undefined) {
        throw new SyncError('Conflict', `this API key is bound to device ${key.deviceId} already`);
      }
      await refuseRemovedDevice(tx, userId, deviceId);
      await tx.bindKeyToDevice(keyHash, deviceId);
    });
  }
}

/**
 * Conflict when `deviceId` was removed from `userId`'s device list (listed by a version, absent
 * from the latest): no key is registered for it again. Call it in the transaction that adds the
 * key, so that a removal cannot slip in between the check and the key.
 */
export async function refuseRemovedDevice(
  tx: Pick<RelayStoreTx, 'listDeviceLists'>,
  userId: string,
  deviceId: string,
): Promise<void> {
  await ready();
  const lists = (await tx.listDeviceLists(userId)).map((record) => readDeviceList(record.list));
  if (removedDevices(lists).has(deviceId)) {
    throw new SyncError(
      'Conflict',
      `device ${deviceId} was removed from this user's device list: it gets no API key again`,
    );
  }
}

/** The devices some version of a chain listed that its latest version does not list. */
function removedDevices(lists: readonly DeviceList[]): Set<string> {
  const latest = new Set(lists.at(-1)?.devices.map((d) => d.deviceId) ?? []);
  const removed = new Set<string>();
  for (const list of lists) {
    for (const device of list.devices) if (!latest.has(device.deviceId)) removed.add(device.deviceId);
  }
  return removed;
}
