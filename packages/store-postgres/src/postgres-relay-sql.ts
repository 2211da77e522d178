/**
 * The SQL of the PostgreSQL relay store, one statement a name, and the base of its query
 * layers: what every layer runs its statements on.
 */

import type { Executor } from './postgres-executors.ts';

const OBJECT_COLUMNS =
  'name, owner, read, write, encrypted, min_epoch, created_at, updated_at, size, version';
const AUDIT_COLUMNS =
  'seq, id, ts, accessor, target, scope, key, action, result, channel, reason, prev_hash, hash';

/** The relay store's statements, over the tables of schema `s`. */
export function statements(s: string) {
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

/** The statements of one schema, by name. */
export type Sql = ReturnType<typeof statements>;

/**
 * The executor (the pool, or one transaction) and the statements every query layer of the
 * relay store runs on. The layers (accounts, objects, sharing, audit) each add the methods of
 * one area; they stack only so that one object carries them all, and none calls another's.
 */
export abstract class PostgresRelayQueries {
  /** Where the statements run. */
  protected readonly x: Executor;
  /** The statements of the store's schema. */
  protected readonly sql: Sql;

  constructor(executor: Executor, sql: Sql) {
    this.x = executor;
    this.sql = sql;
  }
}
