import type { Level } from './levels.ts';
import type { ModGrant, ReadFlag, ShareLevel, WriteFlag } from './rules.ts';

// The storage interface of the relay's own records. It lives in core, beside DocStore and
// KeyValueStore, so that @scopesync/store-sqlite can implement it without importing the relay
// (which depends on the stores). Bytes are Uint8Array: core compiles without Node types.

/** A registered device: one user of the relay. */
export interface UserRecord {
  /** `user_` + 16 lowercase hex characters. */
  readonly userId: string;
  readonly level: Level;
  /** The device name given at registration; not unique. */
  readonly deviceName: string;
  /**
   * The user's Ed25519 public key for verifying their envelopes and grants, if they registered
   * one: 32 bytes as base64url without padding (43 characters). At most one user holds a key.
   */
  readonly signPk: string | null;
  /** The user's X25519 public key for sealing document keys to them, if they registered one (base64url, 43 characters). */
  readonly boxPk: string | null;
  /** Epoch milliseconds. */
  readonly createdAt: number;
}

/** One API key, by the SHA-256 of the key: the key itself is never stored. */
export interface KeyRecord {
  /** Lowercase hex SHA-256 of the key string. */
  readonly keyHash: string;
  readonly userId: string;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  /** Epoch milliseconds of the revocation; null while the key is valid. */
  readonly revokedAt: number | null;
  /**
   * The device of the user's signed device list the key was registered for (32 lowercase hex
   * characters); absent for a key bound to no device. Fixed for the key's life: a device list
   * version without the device revokes the key (docs/encryption.md, "Per-device keys").
   */
  readonly deviceId?: string | undefined;
}

/**
 * What authenticating with an API key reads of it (see {@link RelayStore.getKeyHolder}): whether
 * it is revoked, and who its user is now. Only what a decision needs, so that the read every
 * upgrade makes is one narrow row.
 */
export interface KeyHolder {
  /** Epoch milliseconds of the key's revocation; null while the key is valid. */
  readonly revokedAt: number | null;
  /** The key's user at their current level; null when no such user exists (a store's foreign key normally rules that out). */
  readonly user: { readonly userId: string; readonly level: Level } | null;
}

/**
 * The reads an access decision makes, answered in the caller's turn: what a store whose database
 * is synchronous underneath (SQLite) hands out through {@link RelayStore.immediateReads}. Each
 * returns what the async method of the same name would resolve with, or throws what it would
 * reject with.
 */
export interface ImmediateRelayReads {
  getKeyHolder(keyHash: string): KeyHolder | null;
  getObject(name: string): ObjectRecord | null;
  listShares(blobId: string): ShareRecord[];
}

/** The relay's metadata of one document or blob (the content lives in the DocStore, or as raw blob bytes). */
export interface ObjectRecord {
  /** The document name: `<SCOPE>/<namespace>/<key>` or `blob/<blob_id>`. */
  readonly name: string;
  /** A user id, or the system owner (nil UUID). */
  readonly owner: string;
  readonly read: ReadFlag;
  readonly write: WriteFlag;
  /** True when the relay holds only ciphertext for it (USER_PRIVATE, encrypted blobs). */
  readonly encrypted: boolean;
  /**
   * Encrypted documents: the lowest key epoch the relay still accepts envelopes under. A
   * snapshot under a newer epoch (the owner rotating the document key) raises it. 0 otherwise.
   */
  readonly minEpoch: number;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  /** Epoch milliseconds of the last write the relay saw. */
  readonly updatedAt: number;
  /** Size in bytes of the raw blob bytes; 0 for documents and for blobs without raw bytes. */
  readonly size: number;
  /**
   * Version of the raw blob bytes: 0 before the first PUT, then higher with every PUT. It never
   * repeats for a name, not even after the object is deleted and created again, so an old
   * version cannot match a newer blob. Documents use the DocStore head instead.
   */
  readonly version: number;
}

/** The fields of an object a metadata update may change. */
export type ObjectPatch = Partial<
  Pick<ObjectRecord, 'owner' | 'read' | 'write' | 'encrypted' | 'minEpoch' | 'updatedAt'>
>;

/** One blob share: `userId` may read (or read and write) blob `blobId`. */
export interface ShareRecord {
  readonly blobId: string;
  readonly userId: string;
  readonly level: ShareLevel;
  /** The user id who granted it. */
  readonly grantedBy: string;
  /** Epoch milliseconds. */
  readonly grantedAt: number;
}

/** A user's public keys, as registered (base64url, or null when not registered). */
export interface UserKeys {
  readonly signPk: string | null;
  readonly boxPk: string | null;
}

/**
 * A signing key its user rotated away from (identity rotation, docs/encryption.md), with the
 * statement that retired it: the old key's signature handing the user over to the next keys. A
 * retired key never signs for anyone again (the relay refuses to register or link it), and the
 * records of a user, oldest first, are the chain clients follow from a key they pinned.
 */
export interface RetiredKeyRecord {
  /** The retired signing key (base64url, as stored for users). */
  readonly signPk: string;
  readonly userId: string;
  /** The keys it handed the user over to (base64url). */
  readonly nextSignPk: string;
  readonly nextBoxPk: string;
  /** What the statement names besides the keys: the relay id and the challenge it was made for. */
  readonly relayId: string;
  readonly challenge: string;
  /** The retired key's 64-byte Ed25519 signature of the rotation statement. */
  readonly signature: Uint8Array;
  /** The next key's 64-byte signature of the same statement: it accepted the hand-over. */
  readonly countersignature: Uint8Array;
  /** Epoch milliseconds. */
  readonly retiredAt: number;
}

/**
 * One version of a user's signed device list (see @scopesync/crypto `signDeviceList`), signed by
 * the user's identity key and chained to the version before. Never replaced.
 */
export interface DeviceListRecord {
  readonly userId: string;
  /** 1, 2, …: one row per version. */
  readonly version: number;
  /** The signed list as the user made it. */
  readonly list: Uint8Array;
  /** Epoch milliseconds. */
  readonly createdAt: number;
}

/**
 * A sealed document key for one member of an encrypted blob at one key epoch: the owner seals
 * the blob's document key to the member's box key and signs a grant. The relay keeps both
 * opaque; only the member can open the sealed key.
 */
export interface KeyGrantRecord {
  readonly blobId: string;
  /** The member the key is sealed to (a sharee, or the owner for their own devices). */
  readonly userId: string;
  /** The key epoch the grant is for. */
  readonly epoch: number;
  /** `crypto_box_seal` of the document key to the member's box key. */
  readonly sealedKey: Uint8Array;
  /** The owner-signed grant that pins the sealed key (see @scopesync/crypto `sealGrant`). */
  readonly grant: Uint8Array;
  /** The user id who stored it (the blob's owner). */
  readonly grantedBy: string;
  /** Epoch milliseconds. */
  readonly grantedAt: number;
}

/**
 * One of an encrypted document's keys wrapped under its owner's key-encryption key (see
 * @scopesync/crypto `wrapDocKey`): how the owner's other devices get the key. Opaque to the relay.
 */
export interface WrappedKeyRecord {
  /** `USER_PRIVATE/<owner>/<key>` or `blob/<id>`. */
  readonly docName: string;
  /** The document key's id, 32 lowercase hex characters. */
  readonly keyId: string;
  readonly epoch: number;
  /** The wrapped key as the client made it. */
  readonly wrapped: Uint8Array;
  /** Epoch milliseconds. */
  readonly createdAt: number;
}

/**
 * One version of an encrypted blob's member list, signed by the owner and chained to the version
 * before (see @scopesync/crypto `signMemberList`). The relay keeps every version: a client
 * verifies the whole chain, and the relay accepts envelopes only under the (epoch, key id) pairs
 * the versions name.
 */
export interface MemberListRecord {
  readonly blobId: string;
  /** 1, 2, …: one row per version, never replaced. */
  readonly version: number;
  /** The document key epoch and key id this version makes valid. */
  readonly epoch: number;
  readonly keyId: string;
  /** The signed list as the owner made it. */
  readonly list: Uint8Array;
  /** Epoch milliseconds. */
  readonly createdAt: number;
}

/** A member's signed head of an encrypted blob (see @scopesync/crypto `signHead`): opaque to the relay. */
export interface SignedHeadRecord {
  readonly blobId: string;
  readonly userId: string;
  readonly head: Uint8Array;
  /** Epoch milliseconds. */
  readonly updatedAt: number;
}

/** The channel an audited access came through. */
export type AuditChannel = 'http' | 'ws' | 'runtime';

/**
 * One audit entry. `id` is `AUDIT::<requesting_user_id>::<target_user_id>::<timestamp>`;
 * `seq` orders the chain, `prevHash` is the `hash` of entry `seq - 1` (64 zeros for the
 * first), and `hash` covers every other field (see @scopesync/relay `sealAuditEntry`).
 */
export interface AuditRecord {
  readonly seq: number;
  readonly id: string;
  /** Epoch milliseconds. */
  readonly ts: number;
  /** Who acted: a user id, `guest`, `runtime` or `mod:<name>`. */
  readonly accessor: string;
  /** Whose data it is: a user id, `mod:<name>`, or the system owner. */
  readonly target: string;
  /** The scope, or `blob`. */
  readonly scope: string;
  /** The document key or blob id. */
  readonly key: string;
  readonly action: string;
  readonly result: 'ok' | 'denied';
  readonly channel: AuditChannel;
  /** The permission engine's reason. */
  readonly reason: string;
  readonly prevHash: string;
  readonly hash: string;
}

/** The newest audit entry's position: what the next entry chains to. */
export interface AuditHead {
  readonly seq: number;
  readonly hash: string;
}

/** A filter over the audit log. Entries come back in `seq` order. */
export interface AuditQuery {
  /** Only entries about this target. */
  readonly target?: string | undefined;
  /** Only entries with `ts >= since` (epoch milliseconds). */
  readonly since?: number | undefined;
  /** Only entries with `seq > afterSeq`: the paging cursor. */
  readonly afterSeq?: number | undefined;
  /** At most this many entries (the store may cap it). */
  readonly limit?: number | undefined;
}

/** A page of objects, in name order. */
export interface ObjectListing {
  /** Only names starting with this. */
  readonly prefix: string;
  /** Only names sorting after this one: the paging cursor. */
  readonly after?: string | undefined;
  readonly limit: number;
}

/** A raw-bytes write of a blob. */
export interface BlobWrite {
  /** The bytes; the store keeps its own copy. */
  readonly data: Uint8Array;
  /** The version the caller last saw (0: no raw bytes yet); undefined writes unconditionally. */
  readonly expectedVersion?: number | undefined;
  /** Metadata for the object when it does not exist yet (its size and version are ignored). */
  readonly create: ObjectRecord;
  /** Epoch milliseconds: the new `updatedAt`. */
  readonly now: number;
}

/** RelayStore without close/transaction/immediateReads: what a transaction callback receives. */
export type RelayStoreTx = Omit<RelayStore, 'close' | 'transaction' | 'immediateReads'>;

/**
 * Everything the relay keeps besides document content: users, API key hashes, object
 * metadata and raw blob bytes, shares, the hash-chained audit log and mod grants. Every
 * method resolves once its effect is durable for the store; each call is atomic (all of its
 * rows change or none) and serializable with every other call and transaction. Records
 * returned are copies: changing them changes nothing stored.
 *
 * Invariants every backend enforces, whoever writes (checked by `runRelayStoreSuite` in
 * @scopesync/testing); a backend with a schema keeps them there, not in its code:
 * - a signing key (`UserRecord.signPk`, when not null) belongs to at most one user;
 * - an API key belongs to an existing user;
 * - raw blob bytes belong to an existing object;
 * - a blob version is never given to a name twice, not even after the object is deleted and
 *   created again (the store remembers the highest version per name for its whole life);
 * - deleting an object deletes, in the same transaction, its raw bytes, its wrapped keys and,
 *   for `blob/<id>`, every share, key grant, member list version and signed head of blob `<id>`;
 * - a member list version is stored once: a second write of the same (blob, version) keeps the first;
 * - deleting a share deletes, in the same transaction, that user's key grants for the blob;
 * - the audit log is a chain: entry `seq` follows the head (`seq = head.seq + 1`, `prevHash =
 *   head.hash`, 64 zeros on an empty log), and the head moves with the entry, atomically.
 */
export interface RelayStore {
  /**
   * Creates a user together with its first API key, atomically. Conflict if the user id or key
   * hash exists, or another user holds the same `signPk`; BadRequest if the key names another user.
   */
  createUser(user: UserRecord, firstKey: KeyRecord): Promise<void>;
  /** The user, or null. */
  getUser(userId: string): Promise<UserRecord | null>;
  /** The one user whose registered signing key is `signPk` (compared as stored), or null. */
  findUserBySignPk(signPk: string): Promise<UserRecord | null>;
  /**
   * Replaces a user's public keys; false when there is no such user. Conflict when another user
   * holds the same `signPk`. The caller decides whether a change is allowed.
   */
  setUserKeys(userId: string, keys: UserKeys): Promise<boolean>;
  /**
   * Records that `record.signPk` is retired (an identity rotation); false when it was retired
   * already (the first record is kept). The caller checks the statement's signature.
   */
  retireSignKey(record: RetiredKeyRecord): Promise<boolean>;
  /** The retirement of a signing key, or null when it was never retired. */
  getRetiredKey(signPk: string): Promise<RetiredKeyRecord | null>;
  /** A user's retired signing keys, oldest first (then by key): the user's rotation chain. */
  listRetiredKeys(userId: string): Promise<RetiredKeyRecord[]>;
  /**
   * Stores a device list version unless the user already has that version (which is kept); true
   * when stored. The caller checks the chain and the signature.
   */
  appendDeviceList(record: DeviceListRecord): Promise<boolean>;
  /** A user's device list versions, oldest first. */
  listDeviceLists(userId: string): Promise<DeviceListRecord[]>;
  /** Changes a user's level; false when there is no such user. */
  setUserLevel(userId: string, level: Level): Promise<boolean>;
  /** The number of registered users. */
  countUsers(): Promise<number>;

  /** Adds a key for an existing user. Conflict if the hash exists, NotFound if the user does not. */
  addKey(key: KeyRecord): Promise<void>;
  /** The key with this hash (revoked or not), or null. */
  getKey(keyHash: string): Promise<KeyRecord | null>;
  /**
   * Whether the key with this hash is revoked, and its user's id and level, as one consistent
   * read; null when there is no such key. What authenticating a request or socket needs, in one
   * call (one statement where the store has SQL) instead of `getKey` then `getUser`.
   */
  getKeyHolder(keyHash: string): Promise<KeyHolder | null>;
  /** Marks a key revoked; false when it is unknown or already revoked. */
  revokeKey(keyHash: string, at: number): Promise<boolean>;
  /**
   * Binds a key that names no device to `deviceId` (see {@link KeyRecord.deviceId}); false,
   * and nothing changed, when the key is unknown or names a device already (it keeps that one).
   */
  bindKeyToDevice(keyHash: string, deviceId: string): Promise<boolean>;
  /** A user's API keys, revoked ones too, oldest first (then by hash); empty for an unknown user. */
  listKeys(userId: string): Promise<KeyRecord[]>;

  /** An object's metadata, or null. */
  getObject(name: string): Promise<ObjectRecord | null>;
  /** Creates the object unless it exists; resolves with the stored record (the existing one wins). */
  createObject(record: ObjectRecord): Promise<ObjectRecord>;
  /** Changes fields of an existing object; resolves with the result, or null when it does not exist. */
  updateObject(name: string, patch: ObjectPatch): Promise<ObjectRecord | null>;
  /**
   * Deletes an object and, atomically with it, its raw bytes, its wrapped keys and (for
   * `blob/<id>`) the shares and key grants of blob `<id>`. False, and nothing removed, when
   * there was no object. The blob version head of the name survives (see {@link ObjectRecord.version}).
   */
  deleteObject(name: string): Promise<boolean>;
  /** Objects whose names start with `prefix`, after `after`, in name (code unit) order. */
  listObjects(listing: ObjectListing): Promise<ObjectRecord[]>;
  /** A page of the objects `owner` owns, like {@link listObjects} (e.g. prefix `blob/`: "my blobs"). */
  listObjectsOfOwner(owner: string, listing: ObjectListing): Promise<ObjectRecord[]>;

  /** The raw bytes of a blob, or null when it has none. */
  getBlobData(name: string): Promise<Uint8Array | null>;
  /**
   * Stores a blob's raw bytes, creating the object if needed, and gives them a version higher
   * than any this name had before (the stored one + 1, or past the last one before a deletion).
   * Throws PreconditionFailed when `expectedVersion` is given and differs from the stored
   * version (0 for an object without raw bytes or no object at all). Atomic.
   */
  putBlobData(name: string, write: BlobWrite): Promise<ObjectRecord>;

  /** Creates or replaces a share. */
  putShare(share: ShareRecord): Promise<void>;
  /** Removes a share and that user's key grants for the blob, atomically; false when there was no share. */
  deleteShare(blobId: string, userId: string): Promise<boolean>;
  /** The shares of a blob, by user id. */
  listShares(blobId: string): Promise<ShareRecord[]>;
  /** The shares granted to a user (blobs shared with them), by blob id. */
  listSharesOfUser(userId: string): Promise<ShareRecord[]>;

  /** Creates or replaces the key grant of (`blobId`, `userId`, `epoch`). */
  putKeyGrant(grant: KeyGrantRecord): Promise<void>;
  /** A blob's key grants (only `userId`'s when given), by user id then epoch. */
  listKeyGrants(blobId: string, userId?: string): Promise<KeyGrantRecord[]>;

  /**
   * Stores a member list version unless the blob already has that version (which is kept); true
   * when stored. The caller checks the chain and the signature.
   */
  appendMemberList(record: MemberListRecord): Promise<boolean>;
  /** A blob's member list versions, oldest first. */
  listMemberLists(blobId: string): Promise<MemberListRecord[]>;
  /** Creates or replaces a member's signed head of a blob. */
  putSignedHead(record: SignedHeadRecord): Promise<void>;
  /** A blob's signed heads, by user id. */
  listSignedHeads(blobId: string): Promise<SignedHeadRecord[]>;

  /** Stores a wrapped key unless the document already has one with that key id (which is kept); true when stored. */
  putWrappedKey(key: WrappedKeyRecord): Promise<boolean>;
  /** A document's wrapped keys, oldest epoch first (then by key id). */
  listWrappedKeys(docName: string): Promise<WrappedKeyRecord[]>;

  /**
   * Appends one audit entry atomically: `seal` receives the current head (null for an empty
   * log) and returns the complete entry, whose `seq` must be head + 1 and `prevHash` the head's
   * hash (64 zeros for the first entry), else Conflict and nothing is appended. An error thrown
   * by `seal` passes through, likewise appending nothing. Resolves with the entry.
   */
  appendAudit(seal: (head: AuditHead | null) => AuditRecord): Promise<AuditRecord>;
  /** The head the last append recorded, or null for an empty log. Kept apart from the entries so that removing the newest entry is detectable. */
  auditHead(): Promise<AuditHead | null>;
  /** Audit entries matching `query`, in `seq` order. */
  queryAudit(query: AuditQuery): Promise<AuditRecord[]>;

  /** Replaces every grant whose source is `source` (what a mod declares at registration). */
  replaceGrants(source: string, grants: readonly ModGrant[]): Promise<void>;
  /** Grants whose source is `source`, or all grants. */
  listGrants(source?: string): Promise<ModGrant[]>;

  /**
   * Runs `fn` as one transaction and resolves with what it resolves with.
   *
   * - Atomic: everything done through `tx` commits together when `fn` resolves, or nothing
   *   does when `fn` throws or rejects; its error then passes through unchanged.
   * - A call through `tx` that rejects changed nothing (it is atomic on its own, like any call);
   *   `fn` may catch the error and go on, and the calls before it still commit with the rest.
   * - Reads through `tx` see the transaction's own writes.
   * - Serializable: transactions run one after another with respect to each other and to calls
   *   made on the store outside them, so no other caller ever sees a half-done transaction:
   *   such calls wait until it has committed or rolled back. Keep `fn` short; it holds the store.
   * - `fn` must use only `tx`. A call on the store itself (or a nested `transaction`) from
   *   inside `fn` would wait for the transaction that waits for it; stores detect it and
   *   reject that call with Internal instead of deadlocking. `tx` works only until `fn`
   *   settles: later calls through it reject with Internal.
   * - Unavailable when the store is closed; `close()` waits for an open transaction.
   */
  transaction<T>(fn: (tx: RelayStoreTx) => Promise<T>): Promise<T>;

  /**
   * Optional: the decision reads, answered at once, when a call made now would run at once and
   * read the same rows (a synchronous database, no transaction open or queued, not called from
   * inside a transaction's callback); null when the async methods must be used. Lets the relay
   * decide a WebSocket upgrade without a promise per read. A store over a network (PostgreSQL)
   * leaves it out.
   */
  immediateReads?(): ImmediateRelayReads | null;

  /** Releases the store. Idempotent; later calls reject with Unavailable. */
  close(): Promise<void>;
}

/**
 * The names of the methods of {@link RelayStoreTx}: for stores and wrappers that forward every
 * call. Typed so that a method added to the interface must be added here.
 */
export const RELAY_STORE_TX_METHODS: readonly (keyof RelayStoreTx)[] = Object.keys({
  createUser: true,
  getUser: true,
  findUserBySignPk: true,
  setUserKeys: true,
  retireSignKey: true,
  getRetiredKey: true,
  listRetiredKeys: true,
  appendDeviceList: true,
  listDeviceLists: true,
  setUserLevel: true,
  countUsers: true,
  addKey: true,
  getKey: true,
  getKeyHolder: true,
  revokeKey: true,
  bindKeyToDevice: true,
  listKeys: true,
  getObject: true,
  createObject: true,
  updateObject: true,
  deleteObject: true,
  listObjects: true,
  listObjectsOfOwner: true,
  getBlobData: true,
  putBlobData: true,
  putShare: true,
  deleteShare: true,
  listShares: true,
  listSharesOfUser: true,
  putKeyGrant: true,
  listKeyGrants: true,
  appendMemberList: true,
  listMemberLists: true,
  putSignedHead: true,
  listSignedHeads: true,
  putWrappedKey: true,
  listWrappedKeys: true,
  appendAudit: true,
  auditHead: true,
  queryAudit: true,
  replaceGrants: true,
  listGrants: true,
} satisfies Record<keyof RelayStoreTx, true>) as (keyof RelayStoreTx)[];

/**
 * A {@link RelayStoreTx} whose every method calls the same method of `target` through `wrap`:
 * how a store hands out a transaction's `tx` with a guard around each call, or a wrapper
 * observes every call. `wrap` may throw or reject instead of calling.
 */
export function forwardRelayStoreTx(
  target: RelayStoreTx,
  wrap: <T>(call: () => Promise<T>) => Promise<T>,
): RelayStoreTx {
  const forwarded: Record<string, unknown> = {};
  for (const name of RELAY_STORE_TX_METHODS) {
    const method = target[name] as (...args: unknown[]) => Promise<unknown>;
    // async: a guard that throws still makes a rejected promise, as every store method does.
    forwarded[name] = async (...args: unknown[]) => wrap(() => method.apply(target, args));
  }
  return forwarded as unknown as RelayStoreTx;
}
