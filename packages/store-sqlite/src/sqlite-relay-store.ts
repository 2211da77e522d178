import { AsyncLocalStorage } from 'node:async_hooks';
import {
  type AuditHead,
  type AuditQuery,
  type AuditRecord,
  type BlobWrite,
  type DeviceListRecord,
  forwardRelayStoreTx,
  type ImmediateRelayReads,
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
  type RelayStoreTx,
  type RetiredKeyRecord,
  type ShareRecord,
  type SignedHeadRecord,
  SyncError,
  TransactionGate,
  type UserKeys,
  type UserRecord,
  type WrappedKeyRecord,
} from '@scopesync/core';
import type Database from 'better-sqlite3';
import { toSyncError } from './sqlite-errors.ts';
import { type SqliteFileOptions, SqliteHandle } from './sqlite-handle.ts';
import {
  type GrantSql,
  type KeyGrantSql,
  type KeyHolderSql,
  type KeySql,
  type ObjectSql,
  type RetiredKeySql,
  type ShareSql,
  toGrant,
  toKey,
  toKeyGrant,
  toKeyHolder,
  toObject,
  toRetiredKey,
  toUser,
  type UserSql,
  type WrappedKeySql,
} from './sqlite-relay-rows.ts';
import { GENESIS_HASH, migrateRelaySchema } from './sqlite-relay-schema.ts';

/** Options of {@link SqliteRelayStore}: where the data lives; every other field has a default. */
export type SqliteRelayStoreOptions = SqliteFileOptions;

/** Most entries one audit query returns. */
const MAX_AUDIT_PAGE = 10_000;

/** The audit columns under the record's field names: a row read with them is an AuditRecord. */
const AUDIT_COLUMNS =
  'seq, id, ts, accessor, target, scope, key, action, result, channel, reason, prev_hash AS prevHash, hash';

const OBJECT_COLUMNS =
  'name, owner, read, write, encrypted, min_epoch, created_at, updated_at, size, version';

/** Runs the statements once per store: better-sqlite3 caches nothing by itself. */
function prepare(db: Database.Database) {
  return {
    insertUser: db.prepare<[string, number, string, string | null, string | null, number]>(
      'INSERT INTO users (user_id, level, device_name, sign_pk, box_pk, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    getUser: db.prepare<[string], UserSql>('SELECT * FROM users WHERE user_id = ?'),
    userBySignPk: db.prepare<[string], UserSql>('SELECT * FROM users WHERE sign_pk = ?'),
    setKeys: db.prepare<[string | null, string | null, string]>(
      'UPDATE users SET sign_pk = ?, box_pk = ? WHERE user_id = ?',
    ),
    retireKey: db.prepare<[string, string, string, string, string, string, Uint8Array, Uint8Array, number]>(
      `INSERT INTO retired_keys
         (sign_pk, user_id, next_sign_pk, next_box_pk, relay_id, challenge, signature, countersignature, retired_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sign_pk) DO NOTHING`,
    ),
    retiredKey: db.prepare<[string], RetiredKeySql>('SELECT * FROM retired_keys WHERE sign_pk = ?'),
    retiredKeysOf: db.prepare<[string], RetiredKeySql>(
      'SELECT * FROM retired_keys WHERE user_id = ? ORDER BY retired_at, sign_pk',
    ),
    appendDeviceList: db.prepare<[string, number, Uint8Array, number]>(
      `INSERT INTO device_lists (user_id, version, list, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id, version) DO NOTHING`,
    ),
    deviceLists: db.prepare<[string], { user_id: string; version: number; list: Buffer; created_at: number }>(
      'SELECT * FROM device_lists WHERE user_id = ? ORDER BY version',
    ),
    setLevel: db.prepare<[number, string]>('UPDATE users SET level = ? WHERE user_id = ?'),
    countUsers: db.prepare<[], number>('SELECT count(*) FROM users').pluck(),
    insertKey: db.prepare<[string, string, number, number | null, string | null]>(
      'INSERT INTO api_keys (key_hash, user_id, created_at, revoked_at, device_id) VALUES (?, ?, ?, ?, ?)',
    ),
    getKey: db.prepare<[string], KeySql>('SELECT * FROM api_keys WHERE key_hash = ?'),
    // One statement for authentication, run on every upgrade: the key and its user from one
    // snapshot, only the three columns a decision needs (3 µs against 5–8 µs for all eleven).
    getKeyHolder: db.prepare<[string], KeyHolderSql>(
      `SELECT k.revoked_at, u.user_id, u.level
       FROM api_keys k LEFT JOIN users u ON u.user_id = k.user_id WHERE k.key_hash = ?`,
    ),
    listKeys: db.prepare<[string], KeySql>(
      'SELECT * FROM api_keys WHERE user_id = ? ORDER BY created_at, key_hash',
    ),
    bindKeyToDevice: db.prepare<[string, string]>(
      'UPDATE api_keys SET device_id = ? WHERE key_hash = ? AND device_id IS NULL',
    ),
    revokeKey: db.prepare<[number, string]>(
      'UPDATE api_keys SET revoked_at = ? WHERE key_hash = ? AND revoked_at IS NULL',
    ),
    getObject: db.prepare<[string], ObjectSql>(`SELECT ${OBJECT_COLUMNS} FROM objects WHERE name = ?`),
    insertObject: db.prepare<
      [string, string, number, number, number, number, number, number, number, number]
    >(
      `INSERT INTO objects (${OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
    ),
    updateObject: db.prepare<[string, number, number, number, number, number, string]>(
      'UPDATE objects SET owner = ?, read = ?, write = ?, encrypted = ?, min_epoch = ?, updated_at = ? WHERE name = ?',
    ),
    deleteObject: db.prepare<[string]>('DELETE FROM objects WHERE name = ?'),
    listObjects: db.prepare<[string, string, number], ObjectSql>(
      `SELECT ${OBJECT_COLUMNS} FROM objects WHERE name >= ? AND name > ? ORDER BY name LIMIT ?`,
    ),
    // Walks the objects_owner index (owner, name).
    listObjectsOfOwner: db.prepare<[string, string, string, number], ObjectSql>(
      `SELECT ${OBJECT_COLUMNS} FROM objects WHERE owner = ? AND name >= ? AND name > ? ORDER BY name LIMIT ?`,
    ),
    getBlobData: db.prepare<[string], Buffer>('SELECT data FROM blob_data WHERE name = ?').pluck(),
    putBlobData: db.prepare<[string, Uint8Array]>(
      'INSERT INTO blob_data (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data = excluded.data',
    ),
    blobHead: db.prepare<[string], number>('SELECT version FROM blob_heads WHERE name = ?').pluck(),
    setBlobVersion: db.prepare<[number, number, number, string]>(
      'UPDATE objects SET size = ?, version = ?, updated_at = ? WHERE name = ?',
    ),
    putShare: db.prepare<[string, string, string, string, number]>(
      `INSERT INTO shares (blob_id, user_id, level, granted_by, granted_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (blob_id, user_id) DO UPDATE SET level = excluded.level, granted_by = excluded.granted_by,
       granted_at = excluded.granted_at`,
    ),
    deleteShare: db.prepare<[string, string]>('DELETE FROM shares WHERE blob_id = ? AND user_id = ?'),
    listShares: db.prepare<[string], ShareSql>('SELECT * FROM shares WHERE blob_id = ? ORDER BY user_id'),
    listSharesOfUser: db.prepare<[string], ShareSql>(
      'SELECT * FROM shares WHERE user_id = ? ORDER BY blob_id',
    ),
    putKeyGrant: db.prepare<KeyGrantSql>(
      `INSERT INTO key_grants (blob_id, user_id, epoch, sealed_key, grant_data, granted_by, granted_at)
       VALUES (@blob_id, @user_id, @epoch, @sealed_key, @grant_data, @granted_by, @granted_at)
       ON CONFLICT (blob_id, user_id, epoch) DO UPDATE SET sealed_key = excluded.sealed_key,
       grant_data = excluded.grant_data, granted_by = excluded.granted_by, granted_at = excluded.granted_at`,
    ),
    keyGrantsOfBlob: db.prepare<[string], KeyGrantSql>(
      'SELECT * FROM key_grants WHERE blob_id = ? ORDER BY user_id, epoch',
    ),
    keyGrantsOfUser: db.prepare<[string, string], KeyGrantSql>(
      'SELECT * FROM key_grants WHERE blob_id = ? AND user_id = ? ORDER BY epoch',
    ),
    appendMemberList: db.prepare<[string, number, number, string, Uint8Array, number]>(
      `INSERT INTO member_lists (blob_id, version, epoch, key_id, list, created_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (blob_id, version) DO NOTHING`,
    ),
    memberLists: db.prepare<
      [string],
      { blob_id: string; version: number; epoch: number; key_id: string; list: Buffer; created_at: number }
    >('SELECT * FROM member_lists WHERE blob_id = ? ORDER BY version'),
    putSignedHead: db.prepare<[string, string, Uint8Array, number]>(
      `INSERT INTO signed_heads (blob_id, user_id, head, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (blob_id, user_id) DO UPDATE SET head = excluded.head, updated_at = excluded.updated_at`,
    ),
    signedHeads: db.prepare<[string], { blob_id: string; user_id: string; head: Buffer; updated_at: number }>(
      'SELECT * FROM signed_heads WHERE blob_id = ? ORDER BY user_id',
    ),
    putWrappedKey: db.prepare<[string, string, number, Uint8Array, number]>(
      `INSERT INTO wrapped_keys (doc_name, key_id, epoch, wrapped, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (doc_name, key_id) DO NOTHING`,
    ),
    wrappedKeys: db.prepare<[string], WrappedKeySql>(
      'SELECT * FROM wrapped_keys WHERE doc_name = ? ORDER BY epoch, key_id',
    ),
    auditHead: db.prepare<[], { seq: number; hash: string }>(
      'SELECT seq, hash FROM audit_head WHERE one = 1',
    ),
    insertAudit: db.prepare<AuditRecord>(
      `INSERT INTO audit (seq, id, ts, accessor, target, scope, key, action, result, channel, reason, prev_hash, hash)
       VALUES (@seq, @id, @ts, @accessor, @target, @scope, @key, @action, @result, @channel, @reason, @prevHash, @hash)`,
    ),
    auditAll: db.prepare<[number, number, number], AuditRecord>(
      `SELECT ${AUDIT_COLUMNS} FROM audit WHERE seq > ? AND ts >= ? ORDER BY seq LIMIT ?`,
    ),
    auditByTarget: db.prepare<[string, number, number, number], AuditRecord>(
      `SELECT ${AUDIT_COLUMNS} FROM audit WHERE target = ? AND seq > ? AND ts >= ? ORDER BY seq LIMIT ?`,
    ),
    deleteGrants: db.prepare<[string]>('DELETE FROM mod_grants WHERE source = ?'),
    insertGrant: db.prepare<[string, number, string, string, string | null, number | null]>(
      'INSERT INTO mod_grants (source, position, target, permission, keys, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    grantsOf: db.prepare<[string], GrantSql>('SELECT * FROM mod_grants WHERE source = ? ORDER BY position'),
    allGrants: db.prepare<[], GrantSql>('SELECT * FROM mod_grants ORDER BY source, position'),
  };
}

type Statements = ReturnType<typeof prepare>;

/**
 * The relay's durable store (users, API key hashes, object metadata and raw blob bytes,
 * shares, the audit log, mod grants) in one SQLite file: better-sqlite3, WAL, one
 * transaction per change, committed before its promise resolves. The contract's invariants
 * live in the schema (see {@link CONSTRAINTS}); older files are migrated when opened.
 *
 * `transaction()` holds a `BEGIN IMMEDIATE` transaction on the one connection across the
 * callback's awaits; meanwhile every other call on this store waits for it (a
 * {@link TransactionGate}) instead of running inside it. SQLite's write lock orders it against
 * other connections to the file: their writes wait up to `busyTimeoutMs`, so another store on
 * the same file in the same process must not write while a transaction here is open (it would
 * block the thread, then fail with Unavailable). On a lent `database`, whoever else uses the
 * connection must not write while a transaction is open either: the write would join it.
 */
export class SqliteRelayStore implements RelayStore {
  readonly #handle: SqliteHandle;
  readonly #tables: SqliteRelayTables;
  readonly #gate = new TransactionGate(new AsyncLocalStorage());
  /** The decision reads in the caller's turn (see {@link immediateReads}): one object, made once. */
  readonly #immediate: ImmediateRelayReads;

  /**
   * Opens (creating or migrating if needed) the store at `options.path`, or inside
   * `options.database`, which must enforce foreign keys (better-sqlite3's default).
   */
  constructor(options: SqliteRelayStoreOptions) {
    // Commits are flushed to disk off the event loop (see WalSync): creating an object or a key
    // does not stall every socket for a disk flush; each write still resolves only once on disk.
    this.#handle = new SqliteHandle(options, 'SqliteRelayStore', 'the relay store is closed', true);
    const sql = this.#handle.setUp('cannot create the relay tables', (db) => {
      if (db.pragma('foreign_keys', { simple: true }) !== 1) {
        throw new SyncError('BadRequest', 'SqliteRelayStore needs a database with foreign_keys = ON');
      }
      migrateRelaySchema(db);
      return prepare(db);
    });
    const tables = new SqliteRelayTables(this.#handle, sql);
    this.#tables = tables;
    this.#immediate = {
      getKeyHolder: (keyHash) => tables.getKeyHolderNow(keyHash),
      getObject: (name) => tables.getObjectNow(name),
      listShares: (blobId) => tables.listSharesNow(blobId),
    };
  }

  /**
   * The decision reads in the caller's turn while nothing waits at the gate: better-sqlite3
   * answers synchronously, so a read now sees what `getObject` (and the others) would, without
   * their promises. Null while a transaction is open or queued: the async methods wait for it.
   */
  immediateReads(): ImmediateRelayReads | null {
    return this.#gate.idle ? this.#immediate : null;
  }

  async createUser(user: UserRecord, firstKey: KeyRecord): Promise<void> {
    return this.#write(() => this.#tables.createUser(user, firstKey));
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    return this.#gate.run(() => this.#tables.getUser(userId));
  }

  async findUserBySignPk(signPk: string): Promise<UserRecord | null> {
    return this.#gate.run(() => this.#tables.findUserBySignPk(signPk));
  }

  async setUserKeys(userId: string, keys: UserKeys): Promise<boolean> {
    return this.#write(() => this.#tables.setUserKeys(userId, keys));
  }

  async retireSignKey(record: RetiredKeyRecord): Promise<boolean> {
    return this.#write(() => this.#tables.retireSignKey(record));
  }

  async appendDeviceList(record: DeviceListRecord): Promise<boolean> {
    return this.#write(() => this.#tables.appendDeviceList(record));
  }

  async listDeviceLists(userId: string): Promise<DeviceListRecord[]> {
    return this.#gate.run(() => this.#tables.listDeviceLists(userId));
  }

  async getRetiredKey(signPk: string): Promise<RetiredKeyRecord | null> {
    return this.#gate.run(() => this.#tables.getRetiredKey(signPk));
  }

  async listRetiredKeys(userId: string): Promise<RetiredKeyRecord[]> {
    return this.#gate.run(() => this.#tables.listRetiredKeys(userId));
  }

  async setUserLevel(userId: string, level: Level): Promise<boolean> {
    return this.#write(() => this.#tables.setUserLevel(userId, level));
  }

  async countUsers(): Promise<number> {
    return this.#gate.run(() => this.#tables.countUsers());
  }

  async addKey(key: KeyRecord): Promise<void> {
    return this.#write(() => this.#tables.addKey(key));
  }

  async getKey(keyHash: string): Promise<KeyRecord | null> {
    return this.#gate.run(() => this.#tables.getKey(keyHash));
  }

  async getKeyHolder(keyHash: string): Promise<KeyHolder | null> {
    return this.#gate.run(() => this.#tables.getKeyHolderNow(keyHash));
  }

  async revokeKey(keyHash: string, at: number): Promise<boolean> {
    return this.#write(() => this.#tables.revokeKey(keyHash, at));
  }

  async bindKeyToDevice(keyHash: string, deviceId: string): Promise<boolean> {
    return this.#write(() => this.#tables.bindKeyToDevice(keyHash, deviceId));
  }

  async listKeys(userId: string): Promise<KeyRecord[]> {
    return this.#gate.run(() => this.#tables.listKeys(userId));
  }

  async getObject(name: string): Promise<ObjectRecord | null> {
    return this.#gate.run(() => this.#tables.getObjectNow(name));
  }

  async createObject(record: ObjectRecord): Promise<ObjectRecord> {
    return this.#write(() => this.#tables.createObject(record));
  }

  async updateObject(name: string, patch: ObjectPatch): Promise<ObjectRecord | null> {
    return this.#write(() => this.#tables.updateObject(name, patch));
  }

  async deleteObject(name: string): Promise<boolean> {
    return this.#write(async () => {
      const existed = await this.#tables.deleteObject(name);
      this.#tables.releaseFreePages();
      return existed;
    });
  }

  async listObjects(listing: ObjectListing): Promise<ObjectRecord[]> {
    return this.#gate.run(() => this.#tables.listObjects(listing));
  }

  async listObjectsOfOwner(owner: string, listing: ObjectListing): Promise<ObjectRecord[]> {
    return this.#gate.run(() => this.#tables.listObjectsOfOwner(owner, listing));
  }

  async getBlobData(name: string): Promise<Uint8Array | null> {
    return this.#gate.run(() => this.#tables.getBlobData(name));
  }

  async putBlobData(name: string, write: BlobWrite): Promise<ObjectRecord> {
    return this.#write(() => this.#tables.putBlobData(name, write));
  }

  async putShare(share: ShareRecord): Promise<void> {
    return this.#write(() => this.#tables.putShare(share));
  }

  async deleteShare(blobId: string, userId: string): Promise<boolean> {
    return this.#write(() => this.#tables.deleteShare(blobId, userId));
  }

  async listShares(blobId: string): Promise<ShareRecord[]> {
    return this.#gate.run(() => this.#tables.listSharesNow(blobId));
  }

  async listSharesOfUser(userId: string): Promise<ShareRecord[]> {
    return this.#gate.run(() => this.#tables.listSharesOfUser(userId));
  }

  async putKeyGrant(grant: KeyGrantRecord): Promise<void> {
    return this.#write(() => this.#tables.putKeyGrant(grant));
  }

  async listKeyGrants(blobId: string, userId?: string): Promise<KeyGrantRecord[]> {
    return this.#gate.run(() => this.#tables.listKeyGrants(blobId, userId));
  }

  async appendMemberList(record: MemberListRecord): Promise<boolean> {
    return this.#gate.run(() => this.#tables.appendMemberList(record));
  }

  async listMemberLists(blobId: string): Promise<MemberListRecord[]> {
    return this.#gate.run(() => this.#tables.listMemberLists(blobId));
  }

  async putSignedHead(record: SignedHeadRecord): Promise<void> {
    return this.#gate.run(() => this.#tables.putSignedHead(record));
  }

  async listSignedHeads(blobId: string): Promise<SignedHeadRecord[]> {
    return this.#gate.run(() => this.#tables.listSignedHeads(blobId));
  }

  async putWrappedKey(key: WrappedKeyRecord): Promise<boolean> {
    return this.#write(() => this.#tables.putWrappedKey(key));
  }

  async listWrappedKeys(docName: string): Promise<WrappedKeyRecord[]> {
    return this.#gate.run(() => this.#tables.listWrappedKeys(docName));
  }

  async appendAudit(seal: (head: AuditHead | null) => AuditRecord): Promise<AuditRecord> {
    return this.#write(() => this.#tables.appendAudit(seal));
  }

  async auditHead(): Promise<AuditHead | null> {
    return this.#gate.run(() => this.#tables.auditHead());
  }

  async queryAudit(query: AuditQuery): Promise<AuditRecord[]> {
    return this.#gate.run(() => this.#tables.queryAudit(query));
  }

  async replaceGrants(source: string, grants: readonly ModGrant[]): Promise<void> {
    return this.#write(() => this.#tables.replaceGrants(source, grants));
  }

  async listGrants(source?: string): Promise<ModGrant[]> {
    return this.#gate.run(() => this.#tables.listGrants(source));
  }

  async transaction<T>(fn: (tx: RelayStoreTx) => Promise<T>): Promise<T> {
    const result = await this.#gate.exclusive(async (ticket) => {
      const db = this.#handle.db;
      this.#handle.run('cannot begin a transaction', () => db.exec('BEGIN IMMEDIATE'));
      const tx = forwardRelayStoreTx(this.#tables, (call) => {
        if (!ticket.open) throw new SyncError('Internal', 'this transaction has ended; its tx is closed');
        return call();
      });
      let result: T;
      try {
        result = await fn(tx);
      } catch (error) {
        this.#rollBack(error);
        throw error;
      }
      this.#handle.run('cannot commit the transaction', () => {
        try {
          db.exec('COMMIT');
        } catch (error) {
          this.#rollBack(error);
          throw error;
        }
      });
      this.#tables.releaseFreePages();
      return result;
    });
    await this.#durable();
    return result;
  }

  /** A write through the gate; resolves once it is on disk (at FULL, flushed off the event loop). */
  async #write<T>(step: () => T | Promise<T>): Promise<T> {
    const result = await this.#gate.run(step);
    await this.#durable();
    return result;
  }

  #durable(): Promise<void> {
    return this.#handle.durable('cannot store to the relay store');
  }

  /** Closes the file if the store opened it, after an open transaction. Idempotent; later calls reject with Unavailable. */
  async close(): Promise<void> {
    await this.#gate.run(() => this.#handle.close());
  }

  /** Ends the open transaction without its changes; `cause` is what made it fail. */
  #rollBack(cause: unknown): void {
    const db = this.#handle.db;
    // A failed COMMIT may already have ended it, and a closed connection ended it for good.
    if (!db.open || !db.inTransaction) return;
    try {
      db.exec('ROLLBACK');
    } catch (error) {
      throw toSyncError(error, `cannot roll back after ${String(cause)}`);
    }
  }
}

/**
 * The contract's methods over the tables, without admission control: what the store runs
 * behind its gate, and what a transaction's `tx` calls directly. Every method is one statement
 * or one better-sqlite3 transaction, which nests as a savepoint inside `BEGIN`: a call that
 * fails inside a transaction undoes only itself.
 */
class SqliteRelayTables implements RelayStoreTx {
  readonly #handle: SqliteHandle;
  readonly #sql: Statements;
  readonly #tx: {
    createUser: (user: UserRecord, key: KeyRecord) => void;
    putBlobData: (name: string, write: BlobWrite) => ObjectRecord;
    appendAudit: (seal: (head: AuditHead | null) => AuditRecord) => AuditRecord;
    replaceGrants: (source: string, grants: readonly ModGrant[]) => void;
  };
  /** A large deletion happened inside a transaction; its pages go back after the commit. */
  #freedPages = false;

  constructor(handle: SqliteHandle, sql: Statements) {
    this.#handle = handle;
    this.#sql = sql;
    const db = handle.db;
    this.#tx = {
      createUser: db.transaction((user: UserRecord, key: KeyRecord) => {
        sql.insertUser.run(user.userId, user.level, user.deviceName, user.signPk, user.boxPk, user.createdAt);
        sql.insertKey.run(key.keyHash, key.userId, key.createdAt, key.revokedAt, key.deviceId ?? null);
      }),
      putBlobData: db.transaction((name: string, write: BlobWrite) => {
        const existing = sql.getObject.get(name);
        const current = existing?.version ?? 0;
        if (write.expectedVersion !== undefined && write.expectedVersion !== current) {
          throw new SyncError('PreconditionFailed', `version is ${current}, not ${write.expectedVersion}`);
        }
        if (!existing) insertObject(sql, { ...write.create, name, size: 0, version: 0 });
        sql.putBlobData.run(name, write.data);
        // The triggers refuse a version at or below the head and raise the head to this one.
        const version = Math.max(current, sql.blobHead.get(name) ?? 0) + 1;
        sql.setBlobVersion.run(write.data.byteLength, version, write.now, name);
        return toObject(sql.getObject.get(name) as ObjectSql);
      }),
      appendAudit: db.transaction((seal: (head: AuditHead | null) => AuditRecord) => {
        const head = sql.auditHead.get() ?? null;
        const entry = seal(head);
        // The schema refuses the same (audit_follows_head); checked here to report the caller's Conflict.
        const expected = (head?.seq ?? 0) + 1;
        if (entry.seq !== expected) {
          throw new SyncError('Conflict', `audit entry ${entry.seq} does not follow ${expected - 1}`);
        }
        if (entry.prevHash !== (head?.hash ?? GENESIS_HASH)) {
          throw new SyncError('Conflict', `audit entry ${entry.seq} does not chain to the head's hash`);
        }
        sql.insertAudit.run(entry);
        return entry;
      }),
      replaceGrants: db.transaction((source: string, grants: readonly ModGrant[]) => {
        sql.deleteGrants.run(source);
        grants.forEach((g, i) => {
          const keys = g.keys ? JSON.stringify(g.keys) : null;
          sql.insertGrant.run(source, i, g.target, g.permission, keys, g.expiresAt ?? null);
        });
      }),
    };
  }

  /**
   * Gives back the pages deletions freed, unless a transaction is open: then after its commit
   * (the store calls this again), so that a rollback has nothing to undo here.
   */
  releaseFreePages(): void {
    if (!this.#freedPages || this.#handle.db.inTransaction) return;
    this.#freedPages = false;
    this.#handle.releaseFreePages();
  }

  async createUser(user: UserRecord, firstKey: KeyRecord): Promise<void> {
    this.#run('create the user', () => {
      if (firstKey.userId !== user.userId)
        throw new SyncError('BadRequest', 'the first key must belong to the new user');
      this.#tx.createUser(user, firstKey);
    });
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    return this.#run('read the user', () => {
      const row = this.#sql.getUser.get(userId);
      return row ? toUser(row) : null;
    });
  }

  async findUserBySignPk(signPk: string): Promise<UserRecord | null> {
    return this.#run('find the user of a signing key', () => {
      const row = this.#sql.userBySignPk.get(signPk);
      return row ? toUser(row) : null;
    });
  }

  async setUserKeys(userId: string, keys: UserKeys): Promise<boolean> {
    // users_sign_pk_unique turns a key another user holds into Conflict.
    return this.#run(
      'set the keys of',
      () => this.#sql.setKeys.run(keys.signPk, keys.boxPk, userId).changes > 0,
    );
  }

  async retireSignKey(r: RetiredKeyRecord): Promise<boolean> {
    return this.#run(
      'retire the signing key of',
      () =>
        this.#sql.retireKey.run(
          r.signPk,
          r.userId,
          r.nextSignPk,
          r.nextBoxPk,
          r.relayId,
          r.challenge,
          r.signature,
          r.countersignature,
          r.retiredAt,
        ).changes > 0,
    );
  }

  async appendDeviceList(r: DeviceListRecord): Promise<boolean> {
    return this.#run(
      'store the device list of',
      () => this.#sql.appendDeviceList.run(r.userId, r.version, r.list, r.createdAt).changes > 0,
    );
  }

  async listDeviceLists(userId: string): Promise<DeviceListRecord[]> {
    return this.#run('list the device lists of', () =>
      this.#sql.deviceLists.all(userId).map((r) => ({
        userId: r.user_id,
        version: r.version,
        list: new Uint8Array(r.list),
        createdAt: r.created_at,
      })),
    );
  }

  async getRetiredKey(signPk: string): Promise<RetiredKeyRecord | null> {
    return this.#run('read a retired signing key', () => {
      const row = this.#sql.retiredKey.get(signPk);
      return row ? toRetiredKey(row) : null;
    });
  }

  async listRetiredKeys(userId: string): Promise<RetiredKeyRecord[]> {
    return this.#run('list the retired signing keys of', () =>
      this.#sql.retiredKeysOf.all(userId).map(toRetiredKey),
    );
  }

  async setUserLevel(userId: string, level: Level): Promise<boolean> {
    return this.#run('set the level of', () => this.#sql.setLevel.run(level, userId).changes > 0);
  }

  async countUsers(): Promise<number> {
    return this.#run('count the users', () => this.#sql.countUsers.get() as number);
  }

  async addKey(key: KeyRecord): Promise<void> {
    // The foreign key to users turns an unknown user into NotFound.
    this.#run('add the key', () => {
      this.#sql.insertKey.run(key.keyHash, key.userId, key.createdAt, key.revokedAt, key.deviceId ?? null);
    });
  }

  async getKey(keyHash: string): Promise<KeyRecord | null> {
    return this.#run('read the key', () => {
      const row = this.#sql.getKey.get(keyHash);
      return row ? toKey(row) : null;
    });
  }

  async getKeyHolder(keyHash: string): Promise<KeyHolder | null> {
    return this.getKeyHolderNow(keyHash);
  }

  /** {@link getKeyHolder}, answered in the caller's turn. */
  getKeyHolderNow(keyHash: string): KeyHolder | null {
    return this.#run('read the key and its user', () => {
      const row = this.#sql.getKeyHolder.get(keyHash);
      return row ? toKeyHolder(row) : null;
    });
  }

  async revokeKey(keyHash: string, at: number): Promise<boolean> {
    return this.#run('revoke the key', () => this.#sql.revokeKey.run(at, keyHash).changes > 0);
  }

  async bindKeyToDevice(keyHash: string, deviceId: string): Promise<boolean> {
    return this.#run(
      'bind the key to a device',
      () => this.#sql.bindKeyToDevice.run(deviceId, keyHash).changes > 0,
    );
  }

  async listKeys(userId: string): Promise<KeyRecord[]> {
    return this.#run('list the keys', () => this.#sql.listKeys.all(userId).map(toKey));
  }

  async getObject(name: string): Promise<ObjectRecord | null> {
    return this.getObjectNow(name);
  }

  /** {@link getObject}, answered in the caller's turn. */
  getObjectNow(name: string): ObjectRecord | null {
    return this.#run('read the object', () => {
      const row = this.#sql.getObject.get(name);
      return row ? toObject(row) : null;
    });
  }

  async createObject(record: ObjectRecord): Promise<ObjectRecord> {
    return this.#run('create the object', () => {
      insertObject(this.#sql, record);
      return toObject(this.#sql.getObject.get(record.name) as ObjectSql);
    });
  }

  async updateObject(name: string, patch: ObjectPatch): Promise<ObjectRecord | null> {
    return this.#run('update the object', () => {
      const row = this.#sql.getObject.get(name);
      if (!row) return null;
      const current = toObject(row);
      const next = {
        owner: patch.owner ?? current.owner,
        read: patch.read ?? current.read,
        write: patch.write ?? current.write,
        encrypted: patch.encrypted ?? current.encrypted,
        minEpoch: patch.minEpoch ?? current.minEpoch,
        updatedAt: patch.updatedAt ?? current.updatedAt,
      };
      this.#sql.updateObject.run(
        next.owner,
        next.read,
        next.write,
        next.encrypted ? 1 : 0,
        next.minEpoch,
        next.updatedAt,
        name,
      );
      return { ...current, ...next };
    });
  }

  async deleteObject(name: string): Promise<boolean> {
    return this.#run('delete the object', () => {
      // objects_delete_cascade takes the raw bytes, wrapped keys, shares and key grants along.
      const existed = this.#sql.deleteObject.run(name).changes > 0;
      // A blob's raw bytes may be megabytes: give their pages back rather than keep the high-water mark.
      if (existed) this.#freedPages = true;
      return existed;
    });
  }

  async listObjects(listing: ObjectListing): Promise<ObjectRecord[]> {
    return this.#run('list the objects', () => {
      const limit = Math.max(0, Math.floor(listing.limit));
      const out: ObjectRecord[] = [];
      // Names sharing a prefix are contiguous in SQLite's binary order and start at the prefix,
      // so the first name past the prefix ends the page. No LIKE: it would need escaping.
      for (const row of this.#sql.listObjects.iterate(listing.prefix, listing.after ?? '', limit)) {
        if (!row.name.startsWith(listing.prefix)) break;
        out.push(toObject(row));
      }
      return out;
    });
  }

  async listObjectsOfOwner(owner: string, listing: ObjectListing): Promise<ObjectRecord[]> {
    return this.#run('list the objects of', () => {
      const limit = Math.max(0, Math.floor(listing.limit));
      const out: ObjectRecord[] = [];
      // As listObjects: the owner's names with the prefix are contiguous in (owner, name) order.
      const rows = this.#sql.listObjectsOfOwner.iterate(owner, listing.prefix, listing.after ?? '', limit);
      for (const row of rows) {
        if (!row.name.startsWith(listing.prefix)) break;
        out.push(toObject(row));
      }
      return out;
    });
  }

  async getBlobData(name: string): Promise<Uint8Array | null> {
    return this.#run('read the blob bytes of', () => {
      const data = this.#sql.getBlobData.get(name);
      return data ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
    });
  }

  async putBlobData(name: string, write: BlobWrite): Promise<ObjectRecord> {
    return this.#run('write the blob bytes of', () => this.#tx.putBlobData(name, write));
  }

  async putShare(share: ShareRecord): Promise<void> {
    this.#run('share', () => {
      this.#sql.putShare.run(share.blobId, share.userId, share.level, share.grantedBy, share.grantedAt);
    });
  }

  async deleteShare(blobId: string, userId: string): Promise<boolean> {
    // shares_delete_cascade takes the user's key grants for the blob along.
    return this.#run('revoke the share', () => this.#sql.deleteShare.run(blobId, userId).changes > 0);
  }

  async listShares(blobId: string): Promise<ShareRecord[]> {
    return this.listSharesNow(blobId);
  }

  /** {@link listShares}, answered in the caller's turn. */
  listSharesNow(blobId: string): ShareRecord[] {
    return this.#run('list the shares', () => this.#sql.listShares.all(blobId).map(shareOfRow));
  }

  async listSharesOfUser(userId: string): Promise<ShareRecord[]> {
    return this.#run('list the shares of', () => this.#sql.listSharesOfUser.all(userId).map(shareOfRow));
  }

  async putKeyGrant(grant: KeyGrantRecord): Promise<void> {
    this.#run('store the key grant of', () => {
      this.#sql.putKeyGrant.run({
        blob_id: grant.blobId,
        user_id: grant.userId,
        epoch: grant.epoch,
        sealed_key: Buffer.from(grant.sealedKey),
        grant_data: Buffer.from(grant.grant),
        granted_by: grant.grantedBy,
        granted_at: grant.grantedAt,
      });
    });
  }

  async listKeyGrants(blobId: string, userId?: string): Promise<KeyGrantRecord[]> {
    return this.#run('list the key grants of', () =>
      (userId === undefined
        ? this.#sql.keyGrantsOfBlob.all(blobId)
        : this.#sql.keyGrantsOfUser.all(blobId, userId)
      ).map(toKeyGrant),
    );
  }

  async appendMemberList(record: MemberListRecord): Promise<boolean> {
    return this.#run(
      'store the member list of',
      () =>
        this.#sql.appendMemberList.run(
          record.blobId,
          record.version,
          record.epoch,
          record.keyId,
          record.list,
          record.createdAt,
        ).changes > 0,
    );
  }

  async listMemberLists(blobId: string): Promise<MemberListRecord[]> {
    return this.#run('list the member lists of', () =>
      this.#sql.memberLists.all(blobId).map((r) => ({
        blobId: r.blob_id,
        version: r.version,
        epoch: r.epoch,
        keyId: r.key_id,
        list: new Uint8Array(r.list),
        createdAt: r.created_at,
      })),
    );
  }

  async putSignedHead(record: SignedHeadRecord): Promise<void> {
    this.#run('store the signed head of', () => {
      this.#sql.putSignedHead.run(record.blobId, record.userId, record.head, record.updatedAt);
    });
  }

  async listSignedHeads(blobId: string): Promise<SignedHeadRecord[]> {
    return this.#run('list the signed heads of', () =>
      this.#sql.signedHeads.all(blobId).map((r) => ({
        blobId: r.blob_id,
        userId: r.user_id,
        head: new Uint8Array(r.head),
        updatedAt: r.updated_at,
      })),
    );
  }

  async putWrappedKey(key: WrappedKeyRecord): Promise<boolean> {
    return this.#run(
      'store the wrapped key of',
      () =>
        this.#sql.putWrappedKey.run(key.docName, key.keyId, key.epoch, key.wrapped, key.createdAt).changes >
        0,
    );
  }

  async listWrappedKeys(docName: string): Promise<WrappedKeyRecord[]> {
    return this.#run('list the wrapped keys of', () =>
      this.#sql.wrappedKeys.all(docName).map((r) => ({
        docName: r.doc_name,
        keyId: r.key_id,
        epoch: r.epoch,
        wrapped: new Uint8Array(r.wrapped),
        createdAt: r.created_at,
      })),
    );
  }

  async appendAudit(seal: (head: AuditHead | null) => AuditRecord): Promise<AuditRecord> {
    // The caller's own error from `seal` passes through as it was, not wrapped as a store error.
    let sealFailure: { readonly error: unknown } | undefined;
    const guarded = (head: AuditHead | null): AuditRecord => {
      try {
        return seal(head);
      } catch (error) {
        sealFailure = { error };
        throw error;
      }
    };
    try {
      return this.#run('append to the audit log', () => ({ ...this.#tx.appendAudit(guarded) }));
    } catch (error) {
      throw sealFailure ? sealFailure.error : error;
    }
  }

  async auditHead(): Promise<AuditHead | null> {
    return this.#run('read the audit head', () => this.#sql.auditHead.get() ?? null);
  }

  async queryAudit(query: AuditQuery): Promise<AuditRecord[]> {
    return this.#run('query the audit log', () => {
      const limit = Math.min(Math.max(0, Math.floor(query.limit ?? MAX_AUDIT_PAGE)), MAX_AUDIT_PAGE);
      const after = query.afterSeq ?? 0;
      const since = query.since ?? Number.MIN_SAFE_INTEGER;
      return query.target === undefined
        ? this.#sql.auditAll.all(after, since, limit)
        : this.#sql.auditByTarget.all(query.target, after, since, limit);
    });
  }

  async replaceGrants(source: string, grants: readonly ModGrant[]): Promise<void> {
    this.#run('replace the grants of', () => {
      if (grants.some((g) => g.source !== source))
        throw new SyncError('BadRequest', `every grant must have source ${source}`);
      this.#tx.replaceGrants(source, grants);
    });
  }

  async listGrants(source?: string): Promise<ModGrant[]> {
    return this.#run('list the grants', () =>
      (source === undefined ? this.#sql.allGrants.all() : this.#sql.grantsOf.all(source)).map(toGrant),
    );
  }

  #run<T>(what: string, step: () => T): T {
    return this.#handle.run(`cannot ${what}`, step);
  }
}

function insertObject(sql: Statements, r: ObjectRecord): void {
  sql.insertObject.run(
    r.name,
    r.owner,
    r.read,
    r.write,
    r.encrypted ? 1 : 0,
    r.minEpoch,
    r.createdAt,
    r.updatedAt,
    r.size,
    r.version,
  );
}

function shareOfRow(r: ShareSql): ShareRecord {
  return {
    blobId: r.blob_id,
    userId: r.user_id,
    level: r.level as ShareRecord['level'],
    grantedBy: r.granted_by,
    grantedAt: r.granted_at,
  };
}
