import type {
  AuditRecord,
  KeyHolder,
  KeyRecord,
  Level,
  ModGrant,
  ObjectRecord,
  RetiredKeyRecord,
  UserRecord,
} from '@scopesync/core';
import { toSafeInteger, toSafeIntegerOrNull } from './postgres-pool.ts';

// Rows of the PostgreSQL relay store as node-postgres returns them, and their records.

/** A `users` row. */
export interface UserRow {
  user_id: string;
  level: number;
  device_name: string;
  sign_pk: string | null;
  box_pk: string | null;
  created_at: bigint;
}
/** An `api_keys` row. */
export interface KeyRow {
  key_hash: string;
  user_id: string;
  created_at: bigint;
  revoked_at: bigint | null;
  device_id: string | null;
}
/** An `api_keys` row's revocation joined with its `users` row's id and level (null when there is none). */
export interface KeyHolderRow {
  revoked_at: bigint | null;
  user_id: string | null;
  level: number | null;
}
/** An `objects` row. */
export interface ObjectRow {
  name: string;
  owner: string;
  read: number;
  write: number;
  encrypted: boolean;
  min_epoch: number;
  created_at: bigint;
  updated_at: bigint;
  size: bigint;
  version: bigint;
}
/** A `shares` row. */
export interface ShareRow {
  blob_id: string;
  user_id: string;
  level: string;
  granted_by: string;
  granted_at: bigint;
}
/** A `key_grants` row. */
export interface KeyGrantRow {
  blob_id: string;
  user_id: string;
  epoch: number;
  sealed_key: Buffer;
  grant_data: Buffer;
  granted_by: string;
  granted_at: bigint;
}
/** A `wrapped_keys` row. */
export interface WrappedKeyRow {
  doc_name: string;
  key_id: string;
  epoch: number;
  wrapped: Buffer;
  created_at: bigint;
}
/** An `audit` row. */
export interface AuditRow {
  seq: bigint;
  id: string;
  ts: bigint;
  accessor: string;
  target: string;
  scope: string;
  key: string;
  action: string;
  result: string;
  channel: string;
  reason: string;
  prev_hash: string;
  hash: string;
}
/** A `mod_grants` row. */
export interface GrantRow {
  source: string;
  target: string;
  permission: string;
  keys: string[] | null;
  expires_at: bigint | null;
}

/** An object record as the parameters of the objects table's insert, in column order. */
export function objectValues(r: ObjectRecord): unknown[] {
  return [
    r.name,
    r.owner,
    r.read,
    r.write,
    r.encrypted,
    r.minEpoch,
    r.createdAt,
    r.updatedAt,
    r.size,
    r.version,
  ];
}

/** A plain Uint8Array over the bytes node-postgres decoded (a Buffer compares unequal to one in tests and to callers). */
export function bytes(data: Buffer): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The record of a `users` row. */
export function toUser(r: UserRow): UserRecord {
  return {
    userId: r.user_id,
    level: r.level as Level,
    deviceName: r.device_name,
    signPk: r.sign_pk,
    boxPk: r.box_pk,
    createdAt: toSafeInteger(r.created_at, 'createdAt'),
  };
}

/** The key record of an `api_keys` row (no `deviceId` when it names no device). */
export function toKey(r: KeyRow): KeyRecord {
  const key = {
    keyHash: r.key_hash,
    userId: r.user_id,
    createdAt: toSafeInteger(r.created_at, 'createdAt'),
    revokedAt: toSafeIntegerOrNull(r.revoked_at, 'revokedAt'),
  };
  return r.device_id === null ? key : { ...key, deviceId: r.device_id };
}

/** The key holder of a joined `api_keys` / `users` row. */
export function toKeyHolder(r: KeyHolderRow): KeyHolder {
  return {
    revokedAt: toSafeIntegerOrNull(r.revoked_at, 'revokedAt'),
    user: r.user_id === null ? null : { userId: r.user_id, level: r.level as Level },
  };
}

/** The record of an `objects` row. */
export function toObject(r: ObjectRow): ObjectRecord {
  return {
    name: r.name,
    owner: r.owner,
    read: r.read as ObjectRecord['read'],
    write: r.write as ObjectRecord['write'],
    encrypted: r.encrypted,
    minEpoch: r.min_epoch,
    createdAt: toSafeInteger(r.created_at, 'createdAt'),
    updatedAt: toSafeInteger(r.updated_at, 'updatedAt'),
    size: toSafeInteger(r.size, 'size'),
    version: toSafeInteger(r.version, 'version'),
  };
}

/** The record of an `audit` row. */
export function toAudit(r: AuditRow): AuditRecord {
  return {
    seq: toSafeInteger(r.seq, 'audit seq'),
    id: r.id,
    ts: toSafeInteger(r.ts, 'audit ts'),
    accessor: r.accessor,
    target: r.target,
    scope: r.scope,
    key: r.key,
    action: r.action,
    result: r.result as AuditRecord['result'],
    channel: r.channel as AuditRecord['channel'],
    reason: r.reason,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** The grant of a `mod_grants` row. */
export function toGrant(r: GrantRow): ModGrant {
  return {
    source: r.source,
    target: r.target,
    permission: r.permission as ModGrant['permission'],
    ...(r.keys === null ? {} : { keys: r.keys }),
    ...(r.expires_at === null ? {} : { expiresAt: toSafeInteger(r.expires_at, 'expiresAt') }),
  };
}

/** A `retired_keys` row. */
export interface RetiredKeyRow {
  sign_pk: string;
  user_id: string;
  next_sign_pk: string;
  next_box_pk: string;
  relay_id: string;
  challenge: string;
  signature: Buffer;
  countersignature: Buffer;
  retired_at: bigint;
}

/** The record of a `retired_keys` row. */
export function toRetiredKey(r: RetiredKeyRow): RetiredKeyRecord {
  return {
    signPk: r.sign_pk,
    userId: r.user_id,
    nextSignPk: r.next_sign_pk,
    nextBoxPk: r.next_box_pk,
    relayId: r.relay_id,
    challenge: r.challenge,
    signature: bytes(r.signature),
    countersignature: bytes(r.countersignature),
    retiredAt: toSafeInteger(r.retired_at, 'retiredAt'),
  };
}
