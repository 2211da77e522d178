import type {
  KeyGrantRecord,
  KeyHolder,
  KeyRecord,
  Level,
  ModGrant,
  ObjectRecord,
  RetiredKeyRecord,
  UserRecord,
} from '@scopesync/core';

// Rows of the SQLite relay store as better-sqlite3 returns them, and their records.

/** A `users` row. */
export interface UserSql {
  user_id: string;
  level: number;
  device_name: string;
  sign_pk: string | null;
  box_pk: string | null;
  created_at: number;
}
/** An `api_keys` row. */
export interface KeySql {
  key_hash: string;
  user_id: string;
  created_at: number;
  revoked_at: number | null;
  device_id: string | null;
}
/** An `api_keys` row's revocation joined with its `users` row's id and level (null when there is none). */
export interface KeyHolderSql {
  revoked_at: number | null;
  user_id: string | null;
  level: number | null;
}
/** An `objects` row. */
export interface ObjectSql {
  name: string;
  owner: string;
  read: number;
  write: number;
  encrypted: number;
  min_epoch: number;
  created_at: number;
  updated_at: number;
  size: number;
  version: number;
}
/** A `shares` row. */
export interface ShareSql {
  blob_id: string;
  user_id: string;
  level: string;
  granted_by: string;
  granted_at: number;
}
/** A `key_grants` row. */
export interface KeyGrantSql {
  blob_id: string;
  user_id: string;
  epoch: number;
  sealed_key: Buffer;
  grant_data: Buffer;
  granted_by: string;
  granted_at: number;
}
/** A `wrapped_keys` row. */
export interface WrappedKeySql {
  doc_name: string;
  key_id: string;
  epoch: number;
  wrapped: Buffer;
  created_at: number;
}
/** A `mod_grants` row. */
export interface GrantSql {
  source: string;
  target: string;
  permission: string;
  keys: string | null;
  expires_at: number | null;
}

/** The record of a `users` row. */
export function toUser(r: UserSql): UserRecord {
  return {
    userId: r.user_id,
    level: r.level as Level,
    deviceName: r.device_name,
    signPk: r.sign_pk,
    boxPk: r.box_pk,
    createdAt: r.created_at,
  };
}

/** The key record of an `api_keys` row (no `deviceId` when it names no device). */
export function toKey(r: KeySql): KeyRecord {
  const key = { keyHash: r.key_hash, userId: r.user_id, createdAt: r.created_at, revokedAt: r.revoked_at };
  return r.device_id === null ? key : { ...key, deviceId: r.device_id };
}

/** The key holder of a joined `api_keys` / `users` row. */
export function toKeyHolder(r: KeyHolderSql): KeyHolder {
  return {
    revokedAt: r.revoked_at,
    user: r.user_id === null ? null : { userId: r.user_id, level: r.level as Level },
  };
}

/** The record of an `objects` row. */
export function toObject(r: ObjectSql): ObjectRecord {
  return {
    name: r.name,
    owner: r.owner,
    read: r.read as ObjectRecord['read'],
    write: r.write as ObjectRecord['write'],
    encrypted: r.encrypted !== 0,
    minEpoch: r.min_epoch,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    size: r.size,
    version: r.version,
  };
}

/** The record of a `key_grants` row (with copies of its bytes). */
export function toKeyGrant(r: KeyGrantSql): KeyGrantRecord {
  return {
    blobId: r.blob_id,
    userId: r.user_id,
    epoch: r.epoch,
    sealedKey: new Uint8Array(r.sealed_key),
    grant: new Uint8Array(r.grant_data),
    grantedBy: r.granted_by,
    grantedAt: r.granted_at,
  };
}

/** The grant of a `mod_grants` row. */
export function toGrant(r: GrantSql): ModGrant {
  return {
    source: r.source,
    target: r.target,
    permission: r.permission as ModGrant['permission'],
    ...(r.keys === null ? {} : { keys: JSON.parse(r.keys) as string[] }),
    ...(r.expires_at === null ? {} : { expiresAt: r.expires_at }),
  };
}

/** A row of `retired_keys`. */
export interface RetiredKeySql {
  readonly sign_pk: string;
  readonly user_id: string;
  readonly next_sign_pk: string;
  readonly next_box_pk: string;
  readonly relay_id: string;
  readonly challenge: string;
  readonly signature: Buffer;
  readonly countersignature: Buffer;
  readonly retired_at: number;
}

/** A `retired_keys` row as a record. */
export function toRetiredKey(r: RetiredKeySql): RetiredKeyRecord {
  return {
    signPk: r.sign_pk,
    userId: r.user_id,
    nextSignPk: r.next_sign_pk,
    nextBoxPk: r.next_box_pk,
    relayId: r.relay_id,
    challenge: r.challenge,
    signature: new Uint8Array(r.signature),
    countersignature: new Uint8Array(r.countersignature),
    retiredAt: r.retired_at,
  };
}
