/**
 * The PostgreSQL relay store's accounts: users, their retired signing keys and device
 * lists, and their API keys.
 */

import {
  type DeviceListRecord,
  type KeyHolder,
  type KeyRecord,
  type Level,
  type RetiredKeyRecord,
  SyncError,
  type UserKeys,
  type UserRecord,
} from '@scopesync/core';
import { toSafeInteger } from './postgres-pool.ts';
import {
  bytes,
  type KeyHolderRow,
  type KeyRow,
  type RetiredKeyRow,
  toKey,
  toKeyHolder,
  toRetiredKey,
  toUser,
  type UserRow,
} from './postgres-relay-rows.ts';
import { PostgresRelayQueries } from './postgres-relay-sql.ts';

/** The RelayStore methods of users, signing key rotations, device lists and API keys. */
export abstract class PostgresAccountQueries extends PostgresRelayQueries {
  async createUser(user: UserRecord, firstKey: KeyRecord): Promise<void> {
    if (firstKey.userId !== user.userId) {
      throw new SyncError('BadRequest', 'the first key must belong to the new user');
    }
    await this.x.atomic('create the user', async (q) => {
      // A user id, key hash or signing key that exists already is a unique violation: Conflict.
      await q.query(this.sql.insertUser, [
        user.userId,
        user.level,
        user.deviceName,
        user.signPk,
        user.boxPk,
        user.createdAt,
      ]);
      await q.query(this.sql.insertKey, [
        firstKey.keyHash,
        firstKey.userId,
        firstKey.createdAt,
        firstKey.revokedAt,
        firstKey.deviceId ?? null,
      ]);
    });
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    const rows = await this.x.one(
      'read the user',
      async (q) => (await q.query<UserRow>(this.sql.getUser, [userId])).rows,
    );
    return rows[0] ? toUser(rows[0]) : null;
  }

  async findUserBySignPk(signPk: string): Promise<UserRecord | null> {
    const rows = await this.x.one(
      'find the user of a signing key',
      async (q) => (await q.query<UserRow>(this.sql.userBySignPk, [signPk])).rows,
    );
    return rows[0] ? toUser(rows[0]) : null;
  }

  async setUserKeys(userId: string, keys: UserKeys): Promise<boolean> {
    return this.x.one('set the keys of the user', async (q) => {
      try {
        return ((await q.query(this.sql.setKeys, [userId, keys.signPk, keys.boxPk])).rowCount ?? 0) > 0;
      } catch (error) {
        if ((error as { code?: unknown }).code === '23505') {
          throw new SyncError('Conflict', 'that signing key is registered to another user', { cause: error });
        }
        throw error;
      }
    });
  }

  async retireSignKey(r: RetiredKeyRecord): Promise<boolean> {
    const values = [
      r.signPk,
      r.userId,
      r.nextSignPk,
      r.nextBoxPk,
      r.relayId,
      r.challenge,
      Buffer.from(r.signature),
      Buffer.from(r.countersignature),
      r.retiredAt,
    ];
    return this.x.one(
      'retire the signing key',
      async (q) => ((await q.query(this.sql.retireKey, values)).rowCount ?? 0) > 0,
    );
  }

  async appendDeviceList(r: DeviceListRecord): Promise<boolean> {
    const values = [r.userId, r.version, Buffer.from(r.list), r.createdAt];
    return this.x.one(
      'store the device list',
      async (q) => ((await q.query(this.sql.appendDeviceList, values)).rowCount ?? 0) > 0,
    );
  }

  async listDeviceLists(userId: string): Promise<DeviceListRecord[]> {
    const rows = await this.x.one(
      'list the device lists',
      async (q) =>
        (
          await q.query<{ user_id: string; version: number; list: Buffer; created_at: bigint }>(
            this.sql.deviceLists,
            [userId],
          )
        ).rows,
    );
    return rows.map((r) => ({
      userId: r.user_id,
      version: r.version,
      list: bytes(r.list),
      createdAt: toSafeInteger(r.created_at, 'createdAt'),
    }));
  }

  async getRetiredKey(signPk: string): Promise<RetiredKeyRecord | null> {
    const rows = await this.x.one(
      'read a retired signing key',
      async (q) => (await q.query<RetiredKeyRow>(this.sql.retiredKey, [signPk])).rows,
    );
    return rows[0] ? toRetiredKey(rows[0]) : null;
  }

  async listRetiredKeys(userId: string): Promise<RetiredKeyRecord[]> {
    const rows = await this.x.one(
      'list the retired signing keys',
      async (q) => (await q.query<RetiredKeyRow>(this.sql.retiredKeysOf, [userId])).rows,
    );
    return rows.map(toRetiredKey);
  }

  async setUserLevel(userId: string, level: Level): Promise<boolean> {
    return this.x.one(
      'set the level of the user',
      async (q) => ((await q.query(this.sql.setLevel, [userId, level])).rowCount ?? 0) > 0,
    );
  }

  async countUsers(): Promise<number> {
    const rows = await this.x.one(
      'count the users',
      async (q) => (await q.query<{ n: bigint }>(this.sql.countUsers)).rows,
    );
    return toSafeInteger(rows[0]?.n ?? 0, 'user count');
  }

  async addKey(key: KeyRecord): Promise<void> {
    await this.x.one('add the key', async (q) => {
      try {
        await q.query(this.sql.insertKey, [
          key.keyHash,
          key.userId,
          key.createdAt,
          key.revokedAt,
          key.deviceId ?? null,
        ]);
      } catch (error) {
        if ((error as { code?: unknown }).code === '23503') {
          throw new SyncError('NotFound', `no user ${key.userId}`, { cause: error });
        }
        throw error;
      }
    });
  }

  async getKey(keyHash: string): Promise<KeyRecord | null> {
    const rows = await this.x.one(
      'read the key',
      async (q) => (await q.query<KeyRow>(this.sql.getKey, [keyHash])).rows,
    );
    return rows[0] ? toKey(rows[0]) : null;
  }

  async getKeyHolder(keyHash: string): Promise<KeyHolder | null> {
    const rows = await this.x.one(
      'read the key and its user',
      async (q) => (await q.query<KeyHolderRow>(this.sql.getKeyHolder, [keyHash])).rows,
    );
    return rows[0] ? toKeyHolder(rows[0]) : null;
  }

  async revokeKey(keyHash: string, at: number): Promise<boolean> {
    return this.x.one(
      'revoke the key',
      async (q) => ((await q.query(this.sql.revokeKey, [keyHash, at])).rowCount ?? 0) > 0,
    );
  }

  async bindKeyToDevice(keyHash: string, deviceId: string): Promise<boolean> {
    return this.x.one(
      'bind the key to a device',
      async (q) => ((await q.query(this.sql.bindKeyToDevice, [keyHash, deviceId])).rowCount ?? 0) > 0,
    );
  }

  async listKeys(userId: string): Promise<KeyRecord[]> {
    const rows = await this.x.one(
      'list the keys',
      async (q) => (await q.query<KeyRow>(this.sql.listKeys, [userId])).rows,
    );
    return rows.map(toKey);
  }
}
