import type { Level, ReadFlag, ShareLevel, WriteFlag } from '@scopesync/core';

// The record shapes of the relay's `RelayStore` (packages/relay/src/relay-store.ts), which is
// the contract. They are restated here because the relay depends on this package (it opens
// SqliteDocStore and SqliteRelayStore for a data dir), so this package cannot import the
// relay without a dependency cycle. TypeScript compares them structurally: the relay assigns
// a SqliteRelayStore to a RelayStore and runs its conformance suite against it, so the two
// cannot drift apart unnoticed.

/** A registered device (see the relay's `UserRecord`). */
export interface UserRow {
  readonly userId: string;
  readonly level: Level;
  readonly deviceName: string;
  readonly signPk: string | null;
  readonly boxPk: string | null;
  readonly createdAt: number;
}

/** An API key by its SHA-256 (see the relay's `KeyRecord`). */
export interface KeyRow {
  readonly keyHash: string;
  readonly userId: string;
  readonly createdAt: number;
  readonly revokedAt: number | null;
}

/** An object's metadata (see the relay's `ObjectRecord`). */
export interface ObjectRow {
  readonly name: string;
  readonly owner: string;
  readonly read: ReadFlag;
  readonly write: WriteFlag;
  readonly encrypted: boolean;
  readonly minEpoch: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly size: number;
  readonly version: number;
}

/** The fields of an object a metadata update may change (see the relay's `ObjectPatch`). */
export type ObjectRowPatch = Partial<
  Pick<ObjectRow, 'owner' | 'read' | 'write' | 'encrypted' | 'minEpoch' | 'updatedAt'>
>;

/** A user's public keys (see the relay's `UserKeys`). */
export interface UserKeysRow {
  readonly signPk: string | null;
  readonly boxPk: string | null;
}

/** A sealed document key for one member of an encrypted blob (see the relay's `KeyGrantRecord`). */
export interface KeyGrantRow {
  readonly blobId: string;
  readonly userId: string;
  readonly epoch: number;
  readonly sealedKey: Uint8Array;
  readonly grant: Uint8Array;
  readonly grantedBy: string;
  readonly grantedAt: number;
}

/** A blob share (see the relay's `ShareRecord`). */
export interface ShareRow {
  readonly blobId: string;
  readonly userId: string;
  readonly level: ShareLevel;
  readonly grantedBy: string;
  readonly grantedAt: number;
}

/** One hash-chained audit entry (see the relay's `AuditRecord`). */
export interface AuditRow {
  readonly seq: number;
  readonly id: string;
  readonly ts: number;
  readonly accessor: string;
  readonly target: string;
  readonly scope: string;
  readonly key: string;
  readonly action: string;
  readonly result: 'ok' | 'denied';
  readonly channel: 'http' | 'ws' | 'runtime';
  readonly reason: string;
  readonly prevHash: string;
  readonly hash: string;
}

/** The newest audit entry's position (see the relay's `AuditHead`). */
export interface AuditHeadRow {
  readonly seq: number;
  readonly hash: string;
}

/** An audit filter (see the relay's `AuditQuery`). */
export interface AuditRowQuery {
  readonly target?: string | undefined;
  readonly since?: number | undefined;
  readonly afterSeq?: number | undefined;
  readonly limit?: number | undefined;
}

/** A page request over objects (see the relay's `ObjectListing`). */
export interface ObjectRowListing {
  readonly prefix: string;
  readonly after?: string | undefined;
  readonly limit: number;
}

/** A raw-bytes blob write (see the relay's `BlobWrite`). */
export interface BlobRowWrite {
  readonly data: Uint8Array;
  readonly expectedVersion?: number | undefined;
  readonly create: ObjectRow;
  readonly now: number;
}

/** A document key wrapped under its owner's KEK (see the relay's `WrappedKeyRecord`). */
export interface WrappedKeyRow {
  readonly docName: string;
  readonly keyId: string;
  readonly epoch: number;
  readonly wrapped: Uint8Array;
  readonly createdAt: number;
}
