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
import { SqliteAuditQueries } from './sqlite-audit-queries.ts';
import { toSyncError } from './sqlite-errors.ts';
import { type SqliteFileOptions, SqliteHandle } from './sqlite-handle.ts';
import { migrateRelaySchema } from './sqlite-relay-schema.ts';

/** Options of {@link SqliteRelayStore}: where the data lives; every other field has a default. */
export type SqliteRelayStoreOptions = SqliteFileOptions;

/**
 * The relay's durable store (users, API key hashes, object metadata and raw blob bytes,
 * shares, the audit log, mod grants) in one SQLite file: better-sqlite3, WAL, one
 * transaction per change, committed before its promise resolves. The contract's invariants
 * live in the schema (see `CONSTRAINTS` in sqlite-relay-schema.ts); older files are migrated when opened.
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
    // The tables' layers prepare their statements as they are made: inside the set-up, so that a
    // failure closes a file opened here.
    const tables = this.#handle.setUp('cannot create the relay tables', (db) => {
      if (db.pragma('foreign_keys', { simple: true }) !== 1) {
        throw new SyncError('BadRequest', 'SqliteRelayStore needs a database with foreign_keys = ON');
      }
      migrateRelaySchema(db);
      return new SqliteRelayTables(this.#handle);
    });
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
    return this.#write(() => this.#tables.appendMemberList(record));
  }

  async listMemberLists(blobId: string): Promise<MemberListRecord[]> {
    return this.#gate.run(() => this.#tables.listMemberLists(blobId));
  }

  async putSignedHead(record: SignedHeadRecord): Promise<void> {
    return this.#write(() => this.#tables.putSignedHead(record));
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
class SqliteRelayTables extends SqliteAuditQueries implements RelayStoreTx {}
