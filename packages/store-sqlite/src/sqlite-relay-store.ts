import {
  type AuditHead,
  type AuditQuery,
  type AuditRecord,
  type BlobWrite,
  type KeyGrantRecord,
  type KeyRecord,
  type Level,
  type ModGrant,
  type ObjectListing,
  type ObjectPatch,
  type ObjectRecord,
  type RelayStore,
  type ShareRecord,
  SyncError,
  type UserKeys,
  type UserRecord,
  type WrappedKeyRecord,
} from '@scopesync/core';
import type Database from 'better-sqlite3';
import { type SqliteFileOptions, SqliteHandle } from './sqlite-handle.ts';

/** Options of {@link SqliteRelayStore}: where the data lives; every other field has a default. */
export type SqliteRelayStoreOptions = SqliteFileOptions;

/** Most entries one audit query returns. */
const MAX_AUDIT_PAGE = 10_000;

/**
 * Bumped when the tables change shape; stored in `PRAGMA user_version`. 2: `objects.min_epoch`,
 * `key_grants`, `wrapped_keys`, and the index of users by signing key. 3: `blob_heads`.
 */
const SCHEMA_VERSION = 3;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS users (
    user_id     TEXT    NOT NULL PRIMARY KEY,
    level       INTEGER NOT NULL,
    device_name TEXT    NOT NULL,
    sign_pk     TEXT,
    box_pk      TEXT,
    created_at  INTEGER NOT NULL
  );
  -- Not UNIQUE: a relay from before schema 2 accepted any string and may hold duplicates. The
  -- store refuses new ones (setUserKeys, createUser) and lookups take the oldest user.
  CREATE INDEX IF NOT EXISTS users_sign_pk ON users (sign_pk) WHERE sign_pk IS NOT NULL;
  CREATE TABLE IF NOT EXISTS api_keys (
    key_hash   TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );
  CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user_id);
  CREATE TABLE IF NOT EXISTS objects (
    name       TEXT    NOT NULL PRIMARY KEY,
    owner      TEXT    NOT NULL,
    read       INTEGER NOT NULL,
    write      INTEGER NOT NULL,
    encrypted  INTEGER NOT NULL,
    min_epoch  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    size       INTEGER NOT NULL DEFAULT 0,
    version    INTEGER NOT NULL DEFAULT 0
  );
  -- Raw blob bytes apart from the metadata, so that reading metadata never pages in megabytes.
  CREATE TABLE IF NOT EXISTS blob_data (
    name TEXT NOT NULL PRIMARY KEY REFERENCES objects (name) ON DELETE CASCADE,
    data BLOB NOT NULL
  );
  -- The highest blob version each name ever had. It outlives the object (as the DocStore's seq
  -- heads do), so a blob deleted and created again never reuses a version an old If-Match holds.
  CREATE TABLE IF NOT EXISTS blob_heads (
    name    TEXT    NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS shares (
    blob_id    TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    level      TEXT    NOT NULL,
    granted_by TEXT    NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (blob_id, user_id)
  );
  CREATE TABLE IF NOT EXISTS key_grants (
    blob_id    TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    sealed_key BLOB    NOT NULL,
    grant_data BLOB    NOT NULL,
    granted_by TEXT    NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (blob_id, user_id, epoch)
  );
  CREATE TABLE IF NOT EXISTS wrapped_keys (
    doc_name   TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    wrapped    BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (doc_name, key_id)
  );
  CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER NOT NULL PRIMARY KEY,
    id        TEXT    NOT NULL,
    ts        INTEGER NOT NULL,
    accessor  TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    scope     TEXT    NOT NULL,
    key       TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    result    TEXT    NOT NULL,
    channel   TEXT    NOT NULL,
    reason    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
  );
  CREATE INDEX IF NOT EXISTS audit_target ON audit (target, seq);
  -- The newest entry's seq and hash, written in the same transaction as the entry: deleting the
  -- newest entries (which leaves a valid shorter chain) no longer matches it.
  CREATE TABLE IF NOT EXISTS audit_head (
    one  INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
  );
  CREATE TABLE IF NOT EXISTS mod_grants (
    source     TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    target     TEXT    NOT NULL,
    permission TEXT    NOT NULL,
    keys       TEXT,
    expires_at INTEGER,
    PRIMARY KEY (source, position)
  );
`;

interface UserSql {
  user_id: string;
  level: number;
  device_name: string;
  sign_pk: string | null;
  box_pk: string | null;
  created_at: number;
}
interface KeySql {
  key_hash: string;
  user_id: string;
  created_at: number;
  revoked_at: number | null;
}
interface ObjectSql {
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
interface ShareSql {
  blob_id: string;
  user_id: string;
  level: string;
  granted_by: string;
  granted_at: number;
}
interface KeyGrantSql {
  blob_id: string;
  user_id: string;
  epoch: number;
  sealed_key: Buffer;
  grant_data: Buffer;
  granted_by: string;
  granted_at: number;
}
interface WrappedKeySql {
  doc_name: string;
  key_id: string;
  epoch: number;
  wrapped: Buffer;
  created_at: number;
}
interface GrantSql {
  source: string;
  target: string;
  permission: string;
  keys: string | null;
  expires_at: number | null;
}

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
    userBySignPk: db.prepare<[string], UserSql>(
      'SELECT * FROM users WHERE sign_pk = ? ORDER BY created_at, user_id LIMIT 1',
    ),
    otherUserWithSignPk: db
      .prepare<[string, string], string>(
        'SELECT user_id FROM users WHERE sign_pk = ? AND user_id <> ? LIMIT 1',
      )
      .pluck(),
    setKeys: db.prepare<[string | null, string | null, string]>(
      'UPDATE users SET sign_pk = ?, box_pk = ? WHERE user_id = ?',
    ),
    setLevel: db.prepare<[number, string]>('UPDATE users SET level = ? WHERE user_id = ?'),
    countUsers: db.prepare<[], number>('SELECT count(*) FROM users').pluck(),
    insertKey: db.prepare<[string, string, number, number | null]>(
      'INSERT INTO api_keys (key_hash, user_id, created_at, revoked_at) VALUES (?, ?, ?, ?)',
    ),
    getKey: db.prepare<[string], KeySql>('SELECT * FROM api_keys WHERE key_hash = ?'),
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
    deleteBlobData: db.prepare<[string]>('DELETE FROM blob_data WHERE name = ?'),
    listObjects: db.prepare<[string, string, number], ObjectSql>(
      `SELECT ${OBJECT_COLUMNS} FROM objects WHERE name >= ? AND name > ? ORDER BY name LIMIT ?`,
    ),
    getBlobData: db.prepare<[string], Buffer>('SELECT data FROM blob_data WHERE name = ?').pluck(),
    putBlobData: db.prepare<[string, Uint8Array]>(
      'INSERT INTO blob_data (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data = excluded.data',
    ),
    // Reads and raises the head in one statement; `?` is the object's version + 1, which wins over
    // a missing or lower head (blobs written before schema 3 have none).
    nextBlobVersion: db
      .prepare<[string, number], number>(
        `INSERT INTO blob_heads (name, version) VALUES (?, ?)
         ON CONFLICT (name) DO UPDATE SET version = max(version + 1, excluded.version) RETURNING version`,
      )
      .pluck(),
    setBlobVersion: db.prepare<[number, number, number, string]>(
      'UPDATE objects SET size = ?, version = ?, updated_at = ? WHERE name = ?',
    ),
    putShare: db.prepare<[string, string, string, string, number]>(
      `INSERT INTO shares (blob_id, user_id, level, granted_by, granted_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (blob_id, user_id) DO UPDATE SET level = excluded.level, granted_by = excluded.granted_by,
       granted_at = excluded.granted_at`,
    ),
    deleteShare: db.prepare<[string, string]>('DELETE FROM shares WHERE blob_id = ? AND user_id = ?'),
    deleteShares: db.prepare<[string]>('DELETE FROM shares WHERE blob_id = ?'),
    listShares: db.prepare<[string], ShareSql>('SELECT * FROM shares WHERE blob_id = ? ORDER BY user_id'),
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
    deleteKeyGrantsOfBlob: db.prepare<[string]>('DELETE FROM key_grants WHERE blob_id = ?'),
    putWrappedKey: db.prepare<[string, string, number, Uint8Array, number]>(
      `INSERT INTO wrapped_keys (doc_name, key_id, epoch, wrapped, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (doc_name, key_id) DO NOTHING`,
    ),
    wrappedKeys: db.prepare<[string], WrappedKeySql>(
      'SELECT * FROM wrapped_keys WHERE doc_name = ? ORDER BY epoch, key_id',
    ),
    deleteWrappedKeys: db.prepare<[string]>('DELETE FROM wrapped_keys WHERE doc_name = ?'),
    deleteKeyGrantsOfUser: db.prepare<[string, string]>(
      'DELETE FROM key_grants WHERE blob_id = ? AND user_id = ?',
    ),
    auditHead: db.prepare<[], { seq: number; hash: string }>(
      'SELECT seq, hash FROM audit_head WHERE one = 1',
    ),
    insertAudit: db.prepare<AuditRecord>(
      `INSERT INTO audit (seq, id, ts, accessor, target, scope, key, action, result, channel, reason, prev_hash, hash)
       VALUES (@seq, @id, @ts, @accessor, @target, @scope, @key, @action, @result, @channel, @reason, @prevHash, @hash)`,
    ),
    setAuditHead: db.prepare<[number, string]>(
      'INSERT INTO audit_head (one, seq, hash) VALUES (1, ?, ?) ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash',
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
 * transaction per change, committed before its promise resolves.
 */
export class SqliteRelayStore implements RelayStore {
  readonly #handle: SqliteHandle;
  readonly #sql: Statements;
  readonly #tx: {
    createUser: (user: UserRecord, key: KeyRecord) => void;
    setUserKeys: (userId: string, keys: UserKeys) => boolean;
    deleteShare: (blobId: string, userId: string) => boolean;
    putBlobData: (name: string, write: BlobWrite) => ObjectRecord;
    deleteObject: (name: string) => boolean;
    appendAudit: (seal: (head: AuditHead | null) => AuditRecord) => AuditRecord;
    replaceGrants: (source: string, grants: readonly ModGrant[]) => void;
  };

  /** Opens (creating if needed) the store at `options.path`, or inside `options.database`. */
  constructor(options: SqliteRelayStoreOptions) {
    this.#handle = new SqliteHandle(options, 'SqliteRelayStore', 'the relay store is closed');
    const sql = this.#handle.setUp('cannot create the relay tables', (db) => {
      migrate(db);
      return prepare(db);
    });
    this.#sql = sql;
    const db = this.#handle.db;
    this.#tx = {
      createUser: db.transaction((user: UserRecord, key: KeyRecord) => {
        checkSignPkFree(sql, user.signPk, user.userId);
        sql.insertUser.run(user.userId, user.level, user.deviceName, user.signPk, user.boxPk, user.createdAt);
        sql.insertKey.run(key.keyHash, key.userId, key.createdAt, key.revokedAt);
      }),
      setUserKeys: db.transaction((userId: string, keys: UserKeys) => {
        if (!sql.getUser.get(userId)) return false;
        checkSignPkFree(sql, keys.signPk, userId);
        sql.setKeys.run(keys.signPk, keys.boxPk, userId);
        return true;
      }),
      deleteShare: db.transaction((blobId: string, userId: string) => {
        const existed = sql.deleteShare.run(blobId, userId).changes > 0;
        if (existed) sql.deleteKeyGrantsOfUser.run(blobId, userId);
        return existed;
      }),
      putBlobData: db.transaction((name: string, write: BlobWrite) => {
        const existing = sql.getObject.get(name);
        const current = existing?.version ?? 0;
        if (write.expectedVersion !== undefined && write.expectedVersion !== current) {
          throw new SyncError('PreconditionFailed', `version is ${current}, not ${write.expectedVersion}`);
        }
        if (!existing) insertObject(sql, { ...write.create, name, size: 0, version: 0 });
        sql.putBlobData.run(name, write.data);
        const version = sql.nextBlobVersion.get(name, current + 1) as number;
        sql.setBlobVersion.run(write.data.byteLength, version, write.now, name);
        return toObject(sql.getObject.get(name) as ObjectSql);
      }),
      deleteObject: db.transaction((name: string) => {
        if (name.startsWith('blob/')) {
          sql.deleteShares.run(name.slice(5));
          sql.deleteKeyGrantsOfBlob.run(name.slice(5));
        }
        // Explicit rather than ON DELETE CASCADE: a shared handle may have foreign keys off.
        sql.deleteBlobData.run(name);
        sql.deleteWrappedKeys.run(name);
        return sql.deleteObject.run(name).changes > 0;
      }),
      appendAudit: db.transaction((seal: (head: AuditHead | null) => AuditRecord) => {
        const head = sql.auditHead.get() ?? null;
        const entry = seal(head);
        const expected = (head?.seq ?? 0) + 1;
        if (entry.seq !== expected) {
          throw new SyncError('Conflict', `audit entry ${entry.seq} does not follow ${expected - 1}`);
        }
        sql.insertAudit.run(entry);
        sql.setAuditHead.run(entry.seq, entry.hash);
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
    return this.#run('set the keys of', () => this.#tx.setUserKeys(userId, keys));
  }

  async setUserLevel(userId: string, level: Level): Promise<boolean> {
    return this.#run('set the level of', () => this.#sql.setLevel.run(level, userId).changes > 0);
  }

  async countUsers(): Promise<number> {
    return this.#run('count the users', () => this.#sql.countUsers.get() as number);
  }

  async addKey(key: KeyRecord): Promise<void> {
    this.#run('add the key', () => {
      if (!this.#sql.getUser.get(key.userId)) throw new SyncError('NotFound', `no user ${key.userId}`);
      this.#sql.insertKey.run(key.keyHash, key.userId, key.createdAt, key.revokedAt);
    });
  }

  async getKey(keyHash: string): Promise<KeyRecord | null> {
    return this.#run('read the key', () => {
      const row = this.#sql.getKey.get(keyHash);
      return row
        ? { keyHash: row.key_hash, userId: row.user_id, createdAt: row.created_at, revokedAt: row.revoked_at }
        : null;
    });
  }

  async revokeKey(keyHash: string, at: number): Promise<boolean> {
    return this.#run('revoke the key', () => this.#sql.revokeKey.run(at, keyHash).changes > 0);
  }

  async getObject(name: string): Promise<ObjectRecord | null> {
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
      const existed = this.#tx.deleteObject(name);
      // A blob's raw bytes may be megabytes: give their pages back rather than keep the high-water mark.
      if (existed) this.#handle.releaseFreePages();
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
    return this.#run('revoke the share', () => this.#tx.deleteShare(blobId, userId));
  }

  async listShares(blobId: string): Promise<ShareRecord[]> {
    return this.#run('list the shares', () =>
      this.#sql.listShares.all(blobId).map((r) => ({
        blobId: r.blob_id,
        userId: r.user_id,
        level: r.level as ShareRecord['level'],
        grantedBy: r.granted_by,
        grantedAt: r.granted_at,
      })),
    );
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
    return this.#run('append to the audit log', () => ({ ...this.#tx.appendAudit(seal) }));
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

  /** Closes the file if the store opened it. Idempotent; later calls reject with Unavailable. */
  async close(): Promise<void> {
    this.#handle.close();
  }

  #run<T>(what: string, step: () => T): T {
    return this.#handle.run(`cannot ${what}`, step);
  }
}

function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new SyncError(
      'Unavailable',
      `the relay database has schema ${version}; this relay knows up to ${SCHEMA_VERSION}`,
    );
  }
  db.transaction(() => {
    // Schema 1 tables exist without the columns schema 2 added; CREATE IF NOT EXISTS keeps them as they are.
    const objectColumns = db.pragma('table_info(objects)') as { name: string }[];
    if (objectColumns.length > 0 && !objectColumns.some((c) => c.name === 'min_epoch')) {
      db.exec('ALTER TABLE objects ADD COLUMN min_epoch INTEGER NOT NULL DEFAULT 0');
    }
    db.exec(SCHEMA);
    if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

/** Conflict when a user other than `userId` holds `signPk`: a signing key identifies one user. */
function checkSignPkFree(sql: Statements, signPk: string | null, userId: string): void {
  if (signPk !== null && sql.otherUserWithSignPk.get(signPk, userId) !== undefined) {
    throw new SyncError('Conflict', 'that signing key is registered to another user');
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

function toUser(r: UserSql): UserRecord {
  return {
    userId: r.user_id,
    level: r.level as Level,
    deviceName: r.device_name,
    signPk: r.sign_pk,
    boxPk: r.box_pk,
    createdAt: r.created_at,
  };
}

function toObject(r: ObjectSql): ObjectRecord {
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

function toKeyGrant(r: KeyGrantSql): KeyGrantRecord {
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

function toGrant(r: GrantSql): ModGrant {
  return {
    source: r.source,
    target: r.target,
    permission: r.permission as ModGrant['permission'],
    ...(r.keys === null ? {} : { keys: JSON.parse(r.keys) as string[] }),
    ...(r.expires_at === null ? {} : { expiresAt: r.expires_at }),
  };
}
