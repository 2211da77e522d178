/**
 * The SQLite relay store's objects: their metadata rows and a blob's raw bytes with its
 * version, and giving back the pages a deletion frees.
 */

import {
  type BlobWrite,
  type ObjectListing,
  type ObjectPatch,
  type ObjectRecord,
  SyncError,
} from '@scopesync/core';
import type Database from 'better-sqlite3';
import { SqliteAccountQueries } from './sqlite-account-queries.ts';
import { type ObjectSql, toObject } from './sqlite-relay-rows.ts';

const OBJECT_COLUMNS =
  'name, owner, read, write, encrypted, min_epoch, created_at, updated_at, size, version';

/**
 * The statements of objects and blob bytes. Run once per store: better-sqlite3 caches nothing
 * by itself.
 */
function prepare(db: Database.Database) {
  return {
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
  };
}

type Statements = ReturnType<typeof prepare>;

/**
 * The changes of blob bytes and their version that take several statements: one better-sqlite3
 * transaction each.
 */
function transactions(db: Database.Database, sql: Statements) {
  return {
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
  };
}

/** The RelayStoreTx methods of object metadata and raw blob bytes. */
export abstract class SqliteObjectQueries extends SqliteAccountQueries {
  readonly #sql = prepare(this.handle.db);
  readonly #tx = transactions(this.handle.db, this.#sql);
  /** A large deletion happened inside a transaction; its pages go back after the commit. */
  #freedPages = false;

  /**
   * Gives back the pages deletions freed, unless a transaction is open: then after its commit
   * (the store calls this again), so that a rollback has nothing to undo here.
   */
  releaseFreePages(): void {
    if (!this.#freedPages || this.handle.db.inTransaction) return;
    this.#freedPages = false;
    this.handle.releaseFreePages();
  }

  async getObject(name: string): Promise<ObjectRecord | null> {
    return this.getObjectNow(name);
  }

  /** {@link getObject}, answered in the caller's turn. */
  getObjectNow(name: string): ObjectRecord | null {
    return this.run('read the object', () => {
      const row = this.#sql.getObject.get(name);
      return row ? toObject(row) : null;
    });
  }

  async createObject(record: ObjectRecord): Promise<ObjectRecord> {
    return this.run('create the object', () => {
      insertObject(this.#sql, record);
      return toObject(this.#sql.getObject.get(record.name) as ObjectSql);
    });
  }

  async updateObject(name: string, patch: ObjectPatch): Promise<ObjectRecord | null> {
    return this.run('update the object', () => {
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
    return this.run('delete the object', () => {
      // objects_delete_cascade takes the raw bytes, wrapped keys, shares and key grants along.
      const existed = this.#sql.deleteObject.run(name).changes > 0;
      // A blob's raw bytes may be megabytes: give their pages back rather than keep the high-water mark.
      if (existed) this.#freedPages = true;
      return existed;
    });
  }

  async listObjects(listing: ObjectListing): Promise<ObjectRecord[]> {
    return this.run('list the objects', () => {
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
    return this.run('list the objects of', () => {
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
    return this.run('read the blob bytes of', () => {
      const data = this.#sql.getBlobData.get(name);
      return data ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
    });
  }

  async putBlobData(name: string, write: BlobWrite): Promise<ObjectRecord> {
    return this.run('write the blob bytes of', () => this.#tx.putBlobData(name, write));
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
