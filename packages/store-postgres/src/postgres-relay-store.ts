import { AsyncLocalStorage } from 'node:async_hooks';
import {
  type AuditHead,
  type AuditQuery,
  type AuditRecord,
  type BlobWrite,
  type DeviceListRecord,
  type KeyGrantRecord,
  type KeyHolder,
  type KeyRecord,
  type Level,
  type MemberListRecord,
  type ModGrant,
  type ObjectListing,
  type ObjectPatch,
  type ObjectRecord,
  type RelayStore,
  type RetiredKeyRecord,
  type ShareRecord,
  type SignedHeadRecord,
  SyncError,
  type UserKeys,
  type UserRecord,
  type WrappedKeyRecord,
} from '@scopesync/core';
import { isRetryable, toSyncError } from './postgres-errors.ts';
import {
  type CallbackScope,
  type Executor,
  PoolExecutor,
  RetryTransaction,
  refuseReentry,
  TxExecutor,
} from './postgres-executors.ts';
import { backoff, PostgresHandle, type PostgresStoreOptions } from './postgres-handle.ts';
import { toSafeInteger } from './postgres-pool.ts';
import {
  type AuditRow,
  bytes,
  type GrantRow,
  type KeyGrantRow,
  type KeyHolderRow,
  type KeyRow,
  type ObjectRow,
  objectValues,
  type RetiredKeyRow,
  type ShareRow,
  toAudit,
  toGrant,
  toKey,
  toKeyHolder,
  toObject,
  toRetiredKey,
  toUser,
  type UserRow,
  type WrappedKeyRow,
} from './postgres-relay-rows.ts';

/** Options of {@link PostgresRelayStore}: where the data lives; every other field has a default. */
export type PostgresRelayStoreOptions = PostgresStoreOptions;

/**
 * What {@link PostgresRelayStore.transaction} hands its callback: every method of the store
 * but `close` and `transaction`, all running in the one transaction.
 */
export type PostgresRelayStoreTx = Omit<RelayStore, 'close' | 'transaction'>;

/** Most entries one audit query returns. */
const MAX_AUDIT_PAGE = 10_000;

/** How often createObject tries again when the row it lost a race to is deleted before it can read it. */
const CREATE_OBJECT_ATTEMPTS = 3;

const OBJECT_COLUMNS =
  'name, owner, read, write, encrypted, min_epoch, created_at, updated_at, size, version';
const AUDIT_COLUMNS =
  'seq, id, ts, accessor, target, scope, key, action, result, channel, reason, prev_hash, hash';

function statements(s: string) {
  return {
    insertUser: `INSERT INTO ${s}.users (user_id, level, device_name, sign_pk, box_pk, created_at)
      VALUES ($1, $2, $3, $4, $5, $6)`,
    getUser: `SELECT * FROM ${s}.users WHERE user_id = $1`,
    userBySignPk: `SELECT * FROM ${s}.users WHERE sign_pk = $1`,
    setKeys: `UPDATE ${s}.users SET sign_pk = $2, box_pk = $3 WHERE user_id = $1`,
    setLevel: `UPDATE ${s}.users SET level = $2 WHERE user_id = $1`,
    retireKey: `INSERT INTO ${s}.retired_keys
        (sign_pk, user_id, next_sign_pk, next_box_pk, relay_id, challenge, signature, countersignature, retired_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (sign_pk) DO NOTHING`,
    retiredKey: `SELECT * FROM ${s}.retired_keys WHERE sign_pk = $1`,
    appendDeviceList: `INSERT INTO ${s}.device_lists (user_id, version, list, created_at)
      VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, version) DO NOTHING`,
    deviceLists: `SELECT * FROM ${s}.device_lists WHERE user_id = $1 ORDER BY version`,
    retiredKeysOf: `SELECT * FROM ${s}.retired_keys WHERE user_id = $1 ORDER BY retired_at, sign_pk`,
    countUsers: `SELECT count(*) AS n FROM ${s}.users`,
    insertKey: `INSERT INTO ${s}.api_keys (key_hash, user_id, created_at, revoked_at, device_id) VALUES ($1, $2, $3, $4, $5)`,
    getKey: `SELECT * FROM ${s}.api_keys WHERE key_hash = $1`,
    // One statement for authentication: the key and its user from one snapshot, one round trip,
    // only the columns a decision needs.
    getKeyHolder: `SELECT k.revoked_at, u.user_id, u.level
      FROM ${s}.api_keys k LEFT JOIN ${s}.users u ON u.user_id = k.user_id WHERE k.key_hash = $1`,
    listKeys: `SELECT * FROM ${s}.api_keys WHERE user_id = $1 ORDER BY created_at, key_hash`,
    revokeKey: `UPDATE ${s}.api_keys SET revoked_at = $2 WHERE key_hash = $1 AND revoked_at IS NULL`,
    bindKeyToDevice: `UPDATE ${s}.api_keys SET device_id = $2 WHERE key_hash = $1 AND device_id IS NULL`,
    getObject: `SELECT ${OBJECT_COLUMNS} FROM ${s}.objects WHERE name = $1`,
    lockObject: `SELECT ${OBJECT_COLUMNS} FROM ${s}.objects WHERE name = $1 FOR UPDATE`,
    insertObject: `INSERT INTO ${s}.objects (${OBJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
      ON CONFLICT (name) DO NOTHING RETURNING ${OBJECT_COLUMNS}`,
    // One statement: the patch applies to the row as it is when the update locks it.
    updateObject: `UPDATE ${s}.objects SET
        owner = COALESCE($2, owner), read = COALESCE($3, read), write = COALESCE($4, write),
        encrypted = COALESCE($5, encrypted), min_epoch = COALESCE($6, min_epoch),
        updated_at = COALESCE($7, updated_at)
      WHERE name = $1 RETURNING ${OBJECT_COLUMNS}`,
    deleteObject: `DELETE FROM ${s}.objects WHERE name = $1`,
    listObjects: `SELECT ${OBJECT_COLUMNS} FROM ${s}.objects
      WHERE name >= $1 AND name > $2 AND starts_with(name, $1) ORDER BY name LIMIT $3`,
    // Walks the objects_owner index (owner, name).
    listObjectsOfOwner: `SELECT ${OBJECT_COLUMNS} FROM ${s}.objects
      WHERE owner = $4 AND name >= $1 AND name > $2 AND starts_with(name, $1) ORDER BY name LIMIT $3`,
    getBlobData: `SELECT data FROM ${s}.blob_data WHERE name = $1`,
    putBlobData: `INSERT INTO ${s}.blob_data (name, data) VALUES ($1, $2)
      ON CONFLICT (name) DO UPDATE SET data = excluded.data`,
    // $2 is the object's version + 1, which wins over a missing or lower head.
    nextBlobVersion: `INSERT INTO ${s}.blob_heads AS h (name, version) VALUES ($1, $2)
      ON CONFLICT (name) DO UPDATE SET version = GREATEST(h.version + 1, excluded.version) RETURNING version`,
    setBlobVersion: `UPDATE ${s}.objects SET size = $2, version = $3, updated_at = $4 WHERE name = $1
      RETURNING ${OBJECT_COLUMNS}`,
    putShare: `INSERT INTO ${s}.shares (blob_id, user_id, level, granted_by, granted_at) VALUES ($1, $2, $3, $4, $5)
      ON CONFLICT (blob_id, user_id) DO UPDATE SET level = excluded.level, granted_by = excluded.granted_by,
      granted_at = excluded.granted_at`,
    deleteShare: `DELETE FROM ${s}.shares WHERE blob_id = $1 AND user_id = $2`,
    deleteShares: `DELETE FROM ${s}.shares WHERE blob_id = $1`,
    listShares: `SELECT * FROM ${s}.shares WHERE blob_id = $1 ORDER BY user_id`,
    listSharesOfUser: `SELECT * FROM ${s}.shares WHERE user_id = $1 ORDER BY blob_id`,
    putKeyGrant: `INSERT INTO ${s}.key_grants (blob_id, user_id, epoch, sealed_key, grant_data, granted_by, granted_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7)
      ON CONFLICT (blob_id, user_id, epoch) DO UPDATE SET sealed_key = excluded.sealed_key,
      grant_data = excluded.grant_data, granted_by = excluded.granted_by, granted_at = excluded.granted_at`,
    keyGrantsOfBlob: `SELECT * FROM ${s}.key_grants WHERE blob_id = $1 ORDER BY user_id, epoch`,
    keyGrantsOfUser: `SELECT * FROM ${s}.key_grants WHERE blob_id = $1 AND user_id = $2 ORDER BY epoch`,
    deleteKeyGrantsOfBlob: `DELETE FROM ${s}.key_grants WHERE blob_id = $1`,
    appendMemberList: `INSERT INTO ${s}.member_lists (blob_id, version, epoch, key_id, list, created_at)
      VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (blob_id, version) DO NOTHING`,
    memberLists: `SELECT * FROM ${s}.member_lists WHERE blob_id = $1 ORDER BY version`,
    deleteMemberLists: `DELETE FROM ${s}.member_lists WHERE blob_id = $1`,
    putSignedHead: `INSERT INTO ${s}.signed_heads (blob_id, user_id, head, updated_at) VALUES ($1, $2, $3, $4)
      ON CONFLICT (blob_id, user_id) DO UPDATE SET head = excluded.head, updated_at = excluded.updated_at`,
    signedHeads: `SELECT * FROM ${s}.signed_heads WHERE blob_id = $1 ORDER BY user_id`,
    deleteSignedHeads: `DELETE FROM ${s}.signed_heads WHERE blob_id = $1`,
    deleteKeyGrantsOfUser: `DELETE FROM ${s}.key_grants WHERE blob_id = $1 AND user_id = $2`,
    putWrappedKey: `INSERT INTO ${s}.wrapped_keys (doc_name, key_id, epoch, wrapped, created_at)
      VALUES ($1, $2, $3, $4, $5) ON CONFLICT (doc_name, key_id) DO NOTHING`,
    wrappedKeys: `SELECT * FROM ${s}.wrapped_keys WHERE doc_name = $1 ORDER BY epoch, key_id`,
    deleteWrappedKeys: `DELETE FROM ${s}.wrapped_keys WHERE doc_name = $1`,
    auditHead: `SELECT seq, hash FROM ${s}.audit_head WHERE one = 1`,
    // Every appender, on every relay, queues here until the previous append commits.
    lockAuditHead: `SELECT seq, hash FROM ${s}.audit_head WHERE one = 1 FOR UPDATE`,
    insertAudit: `INSERT INTO ${s}.audit (${AUDIT_COLUMNS})
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
    setAuditHead: `UPDATE ${s}.audit_head SET seq = $1, hash = $2 WHERE one = 1`,
    auditAll: `SELECT ${AUDIT_COLUMNS} FROM ${s}.audit WHERE seq > $1 AND ts >= $2 ORDER BY seq LIMIT $3`,
    auditByTarget: `SELECT ${AUDIT_COLUMNS} FROM ${s}.audit
      WHERE target = $4 AND seq > $1 AND ts >= $2 ORDER BY seq LIMIT $3`,
    deleteGrants: `DELETE FROM ${s}.mod_grants WHERE source = $1`,
    insertGrants: `INSERT INTO ${s}.mod_grants (source, position, target, permission, keys, expires_at)
      SELECT $1, ord - 1, target, permission, keys, expires_at
      FROM unnest($2::text[], $3::text[], $4::jsonb[], $5::int8[]) WITH ORDINALITY AS g (target, permission, keys, expires_at, ord)`,
    grantsOf: `SELECT * FROM ${s}.mod_grants WHERE source = $1 ORDER BY position`,
    allGrants: `SELECT * FROM ${s}.mod_grants ORDER BY source, position`,
  };
}

type Sql = ReturnType<typeof statements>;

// ---------------------------------------------------------------------------------------------
// The methods

/** Every RelayStore method but close and transaction, over an {@link Executor}. */
class PostgresRelayMethods implements PostgresRelayStoreTx {
  readonly #x: Executor;
  readonly #sql: Sql;

  constructor(executor: Executor, sql: Sql) {
    this.#x = executor;
    this.#sql = sql;
  }

  async createUser(user: UserRecord, firstKey: KeyRecord): Promise<void> {
    if (firstKey.userId !== user.userId) {
      throw new SyncError('BadRequest', 'the first key must belong to the new user');
    }
    await this.#x.atomic('create the user', async (q) => {
      // A user id, key hash or signing key that exists already is a unique violation: Conflict.
      await q.query(this.#sql.insertUser, [
        user.userId,
        user.level,
        user.deviceName,
        user.signPk,
        user.boxPk,
        user.createdAt,
      ]);
      await q.query(this.#sql.insertKey, [
        firstKey.keyHash,
        firstKey.userId,
        firstKey.createdAt,
        firstKey.revokedAt,
        firstKey.deviceId ?? null,
      ]);
    });
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    const rows = await this.#x.one(
      'read the user',
      async (q) => (await q.query<UserRow>(this.#sql.getUser, [userId])).rows,
    );
    return rows[0] ? toUser(rows[0]) : null;
  }

  async findUserBySignPk(signPk: string): Promise<UserRecord | null> {
    const rows = await this.#x.one(
      'find the user of a signing key',
      async (q) => (await q.query<UserRow>(this.#sql.userBySignPk, [signPk])).rows,
    );
    return rows[0] ? toUser(rows[0]) : null;
  }

  async setUserKeys(userId: string, keys: UserKeys): Promise<boolean> {
    return this.#x.one('set the keys of the user', async (q) => {
      try {
        return ((await q.query(this.#sql.setKeys, [userId, keys.signPk, keys.boxPk])).rowCount ?? 0) > 0;
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
    return this.#x.one(
      'retire the signing key',
      async (q) => ((await q.query(this.#sql.retireKey, values)).rowCount ?? 0) > 0,
    );
  }

  async appendDeviceList(r: DeviceListRecord): Promise<boolean> {
    const values = [r.userId, r.version, Buffer.from(r.list), r.createdAt];
    return this.#x.one(
      'store the device list',
      async (q) => ((await q.query(this.#sql.appendDeviceList, values)).rowCount ?? 0) > 0,
    );
  }

  async listDeviceLists(userId: string): Promise<DeviceListRecord[]> {
    const rows = await this.#x.one(
      'list the device lists',
      async (q) =>
        (
          await q.query<{ user_id: string; version: number; list: Buffer; created_at: bigint }>(
            this.#sql.deviceLists,
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
    const rows = await this.#x.one(
      'read a retired signing key',
      async (q) => (await q.query<RetiredKeyRow>(this.#sql.retiredKey, [signPk])).rows,
    );
    return rows[0] ? toRetiredKey(rows[0]) : null;
  }

  async listRetiredKeys(userId: string): Promise<RetiredKeyRecord[]> {
    const rows = await this.#x.one(
      'list the retired signing keys',
      async (q) => (await q.query<RetiredKeyRow>(this.#sql.retiredKeysOf, [userId])).rows,
    );
    return rows.map(toRetiredKey);
  }

  async setUserLevel(userId: string, level: Level): Promise<boolean> {
    return this.#x.one(
      'set the level of the user',
      async (q) => ((await q.query(this.#sql.setLevel, [userId, level])).rowCount ?? 0) > 0,
    );
  }

  async countUsers(): Promise<number> {
    const rows = await this.#x.one(
      'count the users',
      async (q) => (await q.query<{ n: bigint }>(this.#sql.countUsers)).rows,
    );
    return toSafeInteger(rows[0]?.n ?? 0, 'user count');
  }

  async addKey(key: KeyRecord): Promise<void> {
    await this.#x.one('add the key', async (q) => {
      try {
        await q.query(this.#sql.insertKey, [
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
    const rows = await this.#x.one(
      'read the key',
      async (q) => (await q.query<KeyRow>(this.#sql.getKey, [keyHash])).rows,
    );
    return rows[0] ? toKey(rows[0]) : null;
  }

  async getKeyHolder(keyHash: string): Promise<KeyHolder | null> {
    const rows = await this.#x.one(
      'read the key and its user',
      async (q) => (await q.query<KeyHolderRow>(this.#sql.getKeyHolder, [keyHash])).rows,
    );
    return rows[0] ? toKeyHolder(rows[0]) : null;
  }

  async revokeKey(keyHash: string, at: number): Promise<boolean> {
    return this.#x.one(
      'revoke the key',
      async (q) => ((await q.query(this.#sql.revokeKey, [keyHash, at])).rowCount ?? 0) > 0,
    );
  }

  async bindKeyToDevice(keyHash: string, deviceId: string): Promise<boolean> {
    return this.#x.one(
      'bind the key to a device',
      async (q) => ((await q.query(this.#sql.bindKeyToDevice, [keyHash, deviceId])).rowCount ?? 0) > 0,
    );
  }

  async listKeys(userId: string): Promise<KeyRecord[]> {
    const rows = await this.#x.one(
      'list the keys',
      async (q) => (await q.query<KeyRow>(this.#sql.listKeys, [userId])).rows,
    );
    return rows.map(toKey);
  }

  async getObject(name: string): Promise<ObjectRecord | null> {
    const rows = await this.#x.one(
      'read the object',
      async (q) => (await q.query<ObjectRow>(this.#sql.getObject, [name])).rows,
    );
    return rows[0] ? toObject(rows[0]) : null;
  }

  async createObject(record: ObjectRecord): Promise<ObjectRecord> {
    return this.#x.one('create the object', async (q) => {
      for (let attempt = 1; ; attempt++) {
        const inserted = await q.query<ObjectRow>(this.#sql.insertObject, objectValues(record));
        if (inserted.rows[0]) return toObject(inserted.rows[0]);
        // It exists: the existing one wins. Read in a statement of its own, which sees it committed.
        const existing = await q.query<ObjectRow>(this.#sql.getObject, [record.name]);
        if (existing.rows[0]) return toObject(existing.rows[0]);
        // Deleted between the two statements: try again.
        if (attempt >= CREATE_OBJECT_ATTEMPTS) {
          throw new SyncError('Unavailable', `${record.name} keeps being created and deleted; try again`);
        }
      }
    });
  }

  async updateObject(name: string, patch: ObjectPatch): Promise<ObjectRecord | null> {
    const rows = await this.#x.one('update the object', async (q) => {
      const values = [
        name,
        patch.owner ?? null,
        patch.read ?? null,
        patch.write ?? null,
        patch.encrypted ?? null,
        patch.minEpoch ?? null,
        patch.updatedAt ?? null,
      ];
      return (await q.query<ObjectRow>(this.#sql.updateObject, values)).rows;
    });
    return rows[0] ? toObject(rows[0]) : null;
  }

  async deleteObject(name: string): Promise<boolean> {
    return this.#x.atomic('delete the object', async (q) => {
      if (name.startsWith('blob/')) {
        const blobId = name.slice('blob/'.length);
        await q.query(this.#sql.deleteShares, [blobId]);
        await q.query(this.#sql.deleteKeyGrantsOfBlob, [blobId]);
        await q.query(this.#sql.deleteMemberLists, [blobId]);
        await q.query(this.#sql.deleteSignedHeads, [blobId]);
      }
      await q.query(this.#sql.deleteWrappedKeys, [name]);
      // blob_data goes with it (ON DELETE CASCADE); blob_heads stays, so versions never repeat.
      return ((await q.query(this.#sql.deleteObject, [name])).rowCount ?? 0) > 0;
    });
  }

  async listObjects(listing: ObjectListing): Promise<ObjectRecord[]> {
    const limit = Math.max(0, Math.floor(listing.limit));
    const rows = await this.#x.one('list the objects', async (q) => {
      return (await q.query<ObjectRow>(this.#sql.listObjects, [listing.prefix, listing.after ?? '', limit]))
        .rows;
    });
    return rows.map(toObject);
  }

  async listObjectsOfOwner(owner: string, listing: ObjectListing): Promise<ObjectRecord[]> {
    const limit = Math.max(0, Math.floor(listing.limit));
    const rows = await this.#x.one('list the objects of', async (q) => {
      const values = [listing.prefix, listing.after ?? '', limit, owner];
      return (await q.query<ObjectRow>(this.#sql.listObjectsOfOwner, values)).rows;
    });
    return rows.map(toObject);
  }

  async getBlobData(name: string): Promise<Uint8Array | null> {
    const rows = await this.#x.one(
      'read the blob bytes',
      async (q) => (await q.query<{ data: Buffer }>(this.#sql.getBlobData, [name])).rows,
    );
    return rows[0] ? bytes(rows[0].data) : null;
  }

  async putBlobData(name: string, write: BlobWrite): Promise<ObjectRecord> {
    const data = Buffer.from(write.data); // the store keeps its own copy, taken now
    return this.#x.atomic('write the blob bytes', async (q) => {
      // Create it if missing, then lock the row: concurrent writers of one blob, on any relay,
      // take turns from here, so the version check and the bump cannot interleave.
      await q.query(this.#sql.insertObject, objectValues({ ...write.create, name, size: 0, version: 0 }));
      const locked = (await q.query<ObjectRow>(this.#sql.lockObject, [name])).rows[0];
      if (!locked) throw new SyncError('Internal', `${name} vanished while locked`);
      const current = toSafeInteger(locked.version, 'version');
      if (write.expectedVersion !== undefined && write.expectedVersion !== current) {
        throw new SyncError('PreconditionFailed', `version is ${current}, not ${write.expectedVersion}`);
      }
      await q.query(this.#sql.putBlobData, [name, data]);
      const head = await q.query<{ version: bigint }>(this.#sql.nextBlobVersion, [name, current + 1]);
      const version = toSafeInteger(head.rows[0]?.version, 'version');
      const updated = await q.query<ObjectRow>(this.#sql.setBlobVersion, [
        name,
        data.byteLength,
        version,
        write.now,
      ]);
      return toObject(updated.rows[0] as ObjectRow);
    });
  }

  async putShare(share: ShareRecord): Promise<void> {
    await this.#x.one('share', async (q) => {
      await q.query(this.#sql.putShare, [
        share.blobId,
        share.userId,
        share.level,
        share.grantedBy,
        share.grantedAt,
      ]);
    });
  }

  async deleteShare(blobId: string, userId: string): Promise<boolean> {
    return this.#x.atomic('revoke the share', async (q) => {
      const existed = ((await q.query(this.#sql.deleteShare, [blobId, userId])).rowCount ?? 0) > 0;
      if (existed) await q.query(this.#sql.deleteKeyGrantsOfUser, [blobId, userId]);
      return existed;
    });
  }

  async listShares(blobId: string): Promise<ShareRecord[]> {
    const rows = await this.#x.one(
      'list the shares',
      async (q) => (await q.query<ShareRow>(this.#sql.listShares, [blobId])).rows,
    );
    return rows.map(shareOfRow);
  }

  async listSharesOfUser(userId: string): Promise<ShareRecord[]> {
    const rows = await this.#x.one(
      'list the shares of',
      async (q) => (await q.query<ShareRow>(this.#sql.listSharesOfUser, [userId])).rows,
    );
    return rows.map(shareOfRow);
  }

  async putKeyGrant(grant: KeyGrantRecord): Promise<void> {
    const values = [
      grant.blobId,
      grant.userId,
      grant.epoch,
      Buffer.from(grant.sealedKey),
      Buffer.from(grant.grant),
      grant.grantedBy,
      grant.grantedAt,
    ];
    await this.#x.one('store the key grant', async (q) => {
      await q.query(this.#sql.putKeyGrant, values);
    });
  }

  async listKeyGrants(blobId: string, userId?: string): Promise<KeyGrantRecord[]> {
    const rows = await this.#x.one('list the key grants', async (q) => {
      return userId === undefined
        ? (await q.query<KeyGrantRow>(this.#sql.keyGrantsOfBlob, [blobId])).rows
        : (await q.query<KeyGrantRow>(this.#sql.keyGrantsOfUser, [blobId, userId])).rows;
    });
    return rows.map((r) => ({
      blobId: r.blob_id,
      userId: r.user_id,
      epoch: r.epoch,
      sealedKey: bytes(r.sealed_key),
      grant: bytes(r.grant_data),
      grantedBy: r.granted_by,
      grantedAt: toSafeInteger(r.granted_at, 'grantedAt'),
    }));
  }

  async appendMemberList(record: MemberListRecord): Promise<boolean> {
    const values = [
      record.blobId,
      record.version,
      record.epoch,
      record.keyId,
      Buffer.from(record.list),
      record.createdAt,
    ];
    return this.#x.one(
      'store the member list',
      async (q) => ((await q.query(this.#sql.appendMemberList, values)).rowCount ?? 0) > 0,
    );
  }

  async listMemberLists(blobId: string): Promise<MemberListRecord[]> {
    const rows = await this.#x.one('list the member lists', async (q) => {
      return (
        await q.query<{
          blob_id: string;
          version: number;
          epoch: string | number;
          key_id: string;
          list: Buffer;
          created_at: bigint;
        }>(this.#sql.memberLists, [blobId])
      ).rows;
    });
    return rows.map((r) => ({
      blobId: r.blob_id,
      version: r.version,
      epoch: Number(r.epoch),
      keyId: r.key_id,
      list: bytes(r.list),
      createdAt: toSafeInteger(r.created_at, 'createdAt'),
    }));
  }

  async putSignedHead(record: SignedHeadRecord): Promise<void> {
    const values = [record.blobId, record.userId, Buffer.from(record.head), record.updatedAt];
    await this.#x.one('store the signed head', async (q) => {
      await q.query(this.#sql.putSignedHead, values);
    });
  }

  async listSignedHeads(blobId: string): Promise<SignedHeadRecord[]> {
    const rows = await this.#x.one('list the signed heads', async (q) => {
      return (
        await q.query<{ blob_id: string; user_id: string; head: Buffer; updated_at: bigint }>(
          this.#sql.signedHeads,
          [blobId],
        )
      ).rows;
    });
    return rows.map((r) => ({
      blobId: r.blob_id,
      userId: r.user_id,
      head: bytes(r.head),
      updatedAt: toSafeInteger(r.updated_at, 'updatedAt'),
    }));
  }

  async putWrappedKey(key: WrappedKeyRecord): Promise<boolean> {
    const values = [key.docName, key.keyId, key.epoch, Buffer.from(key.wrapped), key.createdAt];
    return this.#x.one(
      'store the wrapped key',
      async (q) => ((await q.query(this.#sql.putWrappedKey, values)).rowCount ?? 0) > 0,
    );
  }

  async listWrappedKeys(docName: string): Promise<WrappedKeyRecord[]> {
    const rows = await this.#x.one(
      'list the wrapped keys',
      async (q) => (await q.query<WrappedKeyRow>(this.#sql.wrappedKeys, [docName])).rows,
    );
    return rows.map((r) => ({
      docName: r.doc_name,
      keyId: r.key_id,
      epoch: r.epoch,
      wrapped: bytes(r.wrapped),
      createdAt: toSafeInteger(r.created_at, 'createdAt'),
    }));
  }

  async appendAudit(seal: (head: AuditHead | null) => AuditRecord): Promise<AuditRecord> {
    const outcome = await this.#x.atomic('append to the audit log', async (q) => {
      // The head row is locked until this transaction (the audited one, inside `transaction`)
      // commits: appenders on every relay chain one after another.
      const locked = (await q.query<{ seq: bigint; hash: string }>(this.#sql.lockAuditHead)).rows[0];
      if (!locked) throw new SyncError('Internal', 'the audit head row is missing');
      const seq = toSafeInteger(locked.seq, 'audit seq');
      const head = seq === 0 ? null : { seq, hash: locked.hash };
      let entry: AuditRecord;
      try {
        entry = { ...seal(head) };
      } catch (error) {
        // The caller's own error, to pass on unchanged: returned rather than thrown so that
        // neither the retry nor the error mapping around this step sees it. Nothing is written.
        return { refused: error };
      }
      if (entry.seq !== seq + 1) {
        throw new SyncError('Conflict', `audit entry ${entry.seq} does not follow ${seq}`);
      }
      if (entry.prevHash !== locked.hash) {
        throw new SyncError(
          'Conflict',
          `audit entry ${entry.seq} does not chain to the hash of entry ${seq}`,
        );
      }
      await q.query(this.#sql.insertAudit, [
        entry.seq,
        entry.id,
        entry.ts,
        entry.accessor,
        entry.target,
        entry.scope,
        entry.key,
        entry.action,
        entry.result,
        entry.channel,
        entry.reason,
        entry.prevHash,
        entry.hash,
      ]);
      await q.query(this.#sql.setAuditHead, [entry.seq, entry.hash]);
      return { entry };
    });
    if ('refused' in outcome) throw outcome.refused;
    return outcome.entry;
  }

  async auditHead(): Promise<AuditHead | null> {
    const rows = await this.#x.one(
      'read the audit head',
      async (q) => (await q.query<{ seq: bigint; hash: string }>(this.#sql.auditHead)).rows,
    );
    const seq = toSafeInteger(rows[0]?.seq ?? 0, 'audit seq');
    return seq === 0 || !rows[0] ? null : { seq, hash: rows[0].hash };
  }

  async queryAudit(query: AuditQuery): Promise<AuditRecord[]> {
    const limit = Math.min(Math.max(0, Math.floor(query.limit ?? MAX_AUDIT_PAGE)), MAX_AUDIT_PAGE);
    const after = Math.max(0, Math.floor(query.afterSeq ?? 0));
    const since = Math.max(Number.MIN_SAFE_INTEGER, Math.ceil(query.since ?? Number.MIN_SAFE_INTEGER));
    const rows = await this.#x.one('query the audit log', async (q) => {
      return query.target === undefined
        ? (await q.query<AuditRow>(this.#sql.auditAll, [after, since, limit])).rows
        : (await q.query<AuditRow>(this.#sql.auditByTarget, [after, since, limit, query.target])).rows;
    });
    return rows.map(toAudit);
  }

  async replaceGrants(source: string, grants: readonly ModGrant[]): Promise<void> {
    if (grants.some((g) => g.source !== source)) {
      throw new SyncError('BadRequest', `every grant must have source ${source}`);
    }
    const values = [
      source,
      grants.map((g) => g.target),
      grants.map((g) => g.permission),
      grants.map((g) => (g.keys ? JSON.stringify(g.keys) : null)),
      grants.map((g) => g.expiresAt ?? null),
    ];
    await this.#x.atomic('replace the grants', async (q) => {
      await q.query(this.#sql.deleteGrants, [source]);
      if (grants.length > 0) await q.query(this.#sql.insertGrants, values);
    });
  }

  async listGrants(source?: string): Promise<ModGrant[]> {
    const rows = await this.#x.one('list the grants', async (q) => {
      return source === undefined
        ? (await q.query<GrantRow>(this.#sql.allGrants)).rows
        : (await q.query<GrantRow>(this.#sql.grantsOf, [source])).rows;
    });
    return rows.map(toGrant);
  }
}

// ---------------------------------------------------------------------------------------------
// The store

/**
 * The relay's records (users, API key hashes, object metadata and raw blob bytes, shares, key
 * grants, wrapped keys, the audit chain, mod grants) in PostgreSQL, shared by any number of
 * relays. Every change is committed before its promise resolves; multi-row changes are one
 * transaction; concurrent writers, on one relay or several, are ordered by row locks.
 */
export class PostgresRelayStore extends PostgresRelayMethods implements RelayStore {
  readonly #handle: PostgresHandle;
  readonly #sql: Sql;
  /**
   * Marks the calls made from inside this store's own transaction callbacks. One per store, so
   * that only those are told apart: other stores (other relays) on the same pool or database,
   * and every other caller of this one, run beside an open transaction as usual.
   */
  readonly #scope: AsyncLocalStorage<CallbackScope>;

  private constructor(handle: PostgresHandle) {
    const sql = statements(handle.schema);
    const scope = new AsyncLocalStorage<CallbackScope>();
    super(new PoolExecutor(handle, scope), sql);
    this.#handle = handle;
    this.#sql = sql;
    this.#scope = scope;
  }

  /**
   * Connects (or takes `options.pool`), creates and migrates the schema, and resolves with the
   * store. Unavailable when PostgreSQL cannot be reached; BadRequest for bad options.
   */
  static async open(options: PostgresRelayStoreOptions): Promise<PostgresRelayStore> {
    return new PostgresRelayStore(await PostgresHandle.open(options, 'the relay store is closed'));
  }

  /**
   * Runs `fn` in one SERIALIZABLE transaction: everything done through `tx` commits together
   * when `fn` resolves, or not at all when it rejects (with its error, unchanged); `tx` reads see
   * its own writes; concurrent transactions, on any relay, behave as if run one at a time.
   *
   * `fn` may run more than once: on a serialization failure or deadlock the transaction rolls
   * back and the whole of `fn` runs again with a fresh `tx` (up to `maxAttempts`, then
   * Unavailable), so `fn` must have no effect outside `tx` before it resolves.
   *
   * Calls on `tx` run one at a time; a call that rejects changes nothing and `tx` stays usable.
   * `tx` closes when `fn` settles: later calls through it reject with Internal. A call on this
   * store itself (or a nested `transaction`) made from inside `fn`, which would run outside the
   * transaction and could wait for its locks, rejects with Internal; other callers, and other
   * stores on the same database, are not held up by an open transaction beyond PostgreSQL's
   * own row locks.
   */
  async transaction<T>(fn: (tx: PostgresRelayStoreTx) => Promise<T>): Promise<T> {
    refuseReentry(this.#scope);
    for (let attempt = 1; ; attempt++) {
      this.#handle.checkOpen();
      let failure: { error: unknown } | undefined;
      try {
        return await this.#handle.once(async (client) => {
          const executor = new TxExecutor(client);
          const scope: CallbackScope = { open: true };
          try {
            let result: T;
            try {
              result = await this.#scope.run(scope, () => fn(new PostgresRelayMethods(executor, this.#sql)));
            } finally {
              scope.open = false;
            }
            await executor.end();
            if (executor.mustRetry)
              throw new RetryTransaction('a statement of the transaction must be retried');
            return result;
          } catch (error) {
            await executor.end();
            if (executor.mustRetry || isRetryable(error)) {
              throw new RetryTransaction('the transaction must be retried', { cause: error });
            }
            failure = { error }; // the callback's own error: passed on as it is
            throw error;
          }
        }, 'SERIALIZABLE');
      } catch (error) {
        if (failure !== undefined) throw failure.error;
        if (this.#handle.closed) throw this.#handle.closedError(error);
        if (!isRetryable(error) || attempt >= this.#handle.maxAttempts) {
          throw toSyncError(error, 'cannot run the transaction');
        }
        await backoff(attempt);
      }
    }
  }

  /** Ends the pool if the store opened it. Idempotent; later calls reject with Unavailable. */
  async close(): Promise<void> {
    await this.#handle.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Conversions

function shareOfRow(r: ShareRow): ShareRecord {
  return {
    blobId: r.blob_id,
    userId: r.user_id,
    level: r.level as ShareRecord['level'],
    grantedBy: r.granted_by,
    grantedAt: toSafeInteger(r.granted_at, 'grantedAt'),
  };
}
