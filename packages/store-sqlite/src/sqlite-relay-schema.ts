import { SyncError } from '@scopesync/core';
import type Database from 'better-sqlite3';

// The SQLite relay store's schema: the tables, the contract's invariants as constraints and
// triggers, and the migrations from older files.

/**
 * Bumped when the tables change shape; stored in `PRAGMA user_version`. 2: `objects.min_epoch`,
 * `key_grants`, `wrapped_keys`, and the index of users by signing key. 3: `blob_heads`.
 * 4: the contract's invariants as constraints and triggers ({@link CONSTRAINTS}).
 * 5: `member_lists` and `signed_heads` of encrypted blobs (created by SCHEMA, cascaded by CONSTRAINTS).
 * 6: the index of shares by user (`shares_user`).
 * 7: `retired_keys`, the signing keys users rotated away from (identity rotation), and
 *    `device_lists`, users' signed device lists.
 * 8: the index of objects by owner (`objects_owner`, "my blobs").
 * 9: `api_keys.device_id`, the device of the user's device list a key was registered for.
 */
const SCHEMA_VERSION = 9;

/** The `prevHash` of the first audit entry. */
export const GENESIS_HASH = '0'.repeat(64);

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS users (
    user_id     TEXT    NOT NULL PRIMARY KEY,
    level       INTEGER NOT NULL,
    device_name TEXT    NOT NULL,
    sign_pk     TEXT,
    box_pk      TEXT,
    created_at  INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS api_keys (
    key_hash   TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    -- The device list entry the key belongs to (null: none): a list without it revokes the key.
    device_id  TEXT
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
  -- The highest blob version each name ever had, kept by the triggers below. It outlives the
  -- object (as the DocStore's seq heads do), so a blob deleted and created again never reuses a
  -- version an old If-Match holds.
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
  -- "Shared with me": a user's incoming shares.
  CREATE INDEX IF NOT EXISTS shares_user ON shares (user_id, blob_id);
  CREATE INDEX IF NOT EXISTS objects_owner ON objects (owner, name);
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
  -- Every owner-signed version of an encrypted blob's member list; never replaced.
  CREATE TABLE IF NOT EXISTS member_lists (
    blob_id    TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    epoch      INTEGER NOT NULL,
    key_id     TEXT    NOT NULL,
    list       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blob_id, version)
  );
  -- Each member's signed view of an encrypted blob's history (opaque to the relay).
  CREATE TABLE IF NOT EXISTS signed_heads (
    blob_id    TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    head       BLOB    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (blob_id, user_id)
  );
  CREATE TABLE IF NOT EXISTS wrapped_keys (
    doc_name   TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    wrapped    BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (doc_name, key_id)
  );
  -- Signing keys their users rotated away from, with the statement that retired each: never
  -- registered or linked again, and the chain clients follow from a pinned key. Kept when the
  -- user goes: a retired key must stay retired.
  CREATE TABLE IF NOT EXISTS retired_keys (
    sign_pk      TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    next_sign_pk TEXT    NOT NULL,
    next_box_pk  TEXT    NOT NULL,
    relay_id     TEXT    NOT NULL,
    challenge    TEXT    NOT NULL,
    signature    BLOB    NOT NULL,
    countersignature BLOB NOT NULL,
    retired_at   INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS retired_keys_user ON retired_keys (user_id, retired_at);
  -- Every version of a user's device list, signed by the identity key; never replaced.
  CREATE TABLE IF NOT EXISTS device_lists (
    user_id    TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    list       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, version)
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

/**
 * The RelayStore contract's invariants, held by the schema so that no code path (this store,
 * the CLI, a future one) can break them. Schema 4. Triggers rather than foreign keys where the
 * link is not a plain column (a share's `blob_id` is the object name without `blob/`) or where
 * rows may exist before their object (a wrapped key stored before the document's first write).
 * A trigger's RAISE surfaces as Internal: the store checks the caller's mistakes first and
 * reports them with their own kind, so reaching one means a bug.
 */
const CONSTRAINTS = `
  -- A signing key identifies one user.
  CREATE UNIQUE INDEX IF NOT EXISTS users_sign_pk_unique ON users (sign_pk) WHERE sign_pk IS NOT NULL;

  -- Deleting an object takes everything attached to its name with it, in the same statement.
  CREATE TRIGGER IF NOT EXISTS objects_delete_cascade AFTER DELETE ON objects BEGIN
    DELETE FROM blob_data WHERE name = OLD.name;
    DELETE FROM wrapped_keys WHERE doc_name = OLD.name;
    DELETE FROM shares WHERE substr(OLD.name, 1, 5) = 'blob/' AND blob_id = substr(OLD.name, 6);
    DELETE FROM key_grants WHERE substr(OLD.name, 1, 5) = 'blob/' AND blob_id = substr(OLD.name, 6);
  END;

  -- A blob's member lists and signed heads go with it (schema 5).
  CREATE TRIGGER IF NOT EXISTS objects_delete_trust_cascade AFTER DELETE ON objects
  WHEN substr(OLD.name, 1, 5) = 'blob/' BEGIN
    DELETE FROM member_lists WHERE blob_id = substr(OLD.name, 6);
    DELETE FROM signed_heads WHERE blob_id = substr(OLD.name, 6);
  END;

  -- Revoking a share revokes the keys sealed to that user for the blob.
  CREATE TRIGGER IF NOT EXISTS shares_delete_cascade AFTER DELETE ON shares BEGIN
    DELETE FROM key_grants WHERE blob_id = OLD.blob_id AND user_id = OLD.user_id;
  END;

  -- Blob versions never repeat for a name: a new version must pass the name's head, and every
  -- version an object takes raises the head, which outlives the object.
  CREATE TRIGGER IF NOT EXISTS blob_version_fresh_insert BEFORE INSERT ON objects
  WHEN NEW.version <> 0 AND NEW.version <= coalesce((SELECT version FROM blob_heads WHERE name = NEW.name), 0)
  BEGIN
    SELECT RAISE(ABORT, 'blob version repeats');
  END;
  CREATE TRIGGER IF NOT EXISTS blob_version_fresh_update BEFORE UPDATE OF version ON objects
  WHEN NEW.version <> OLD.version AND NEW.version <> 0
    AND NEW.version <= coalesce((SELECT version FROM blob_heads WHERE name = NEW.name), 0)
  BEGIN
    SELECT RAISE(ABORT, 'blob version repeats');
  END;
  CREATE TRIGGER IF NOT EXISTS blob_version_head_insert AFTER INSERT ON objects WHEN NEW.version <> 0
  BEGIN
    INSERT INTO blob_heads (name, version) VALUES (NEW.name, NEW.version)
      ON CONFLICT (name) DO UPDATE SET version = max(version, excluded.version);
  END;
  CREATE TRIGGER IF NOT EXISTS blob_version_head_update AFTER UPDATE OF version ON objects WHEN NEW.version <> 0
  BEGIN
    INSERT INTO blob_heads (name, version) VALUES (NEW.name, NEW.version)
      ON CONFLICT (name) DO UPDATE SET version = max(version, excluded.version);
  END;

  -- The audit log is a chain whose head moves with each entry.
  CREATE TRIGGER IF NOT EXISTS audit_follows_head BEFORE INSERT ON audit
  WHEN NEW.seq <> coalesce((SELECT seq FROM audit_head WHERE one = 1), 0) + 1
    OR NEW.prev_hash <> coalesce((SELECT hash FROM audit_head WHERE one = 1), '${GENESIS_HASH}')
  BEGIN
    SELECT RAISE(ABORT, 'audit entry does not follow the head');
  END;
  CREATE TRIGGER IF NOT EXISTS audit_head_moves AFTER INSERT ON audit BEGIN
    INSERT INTO audit_head (one, seq, hash) VALUES (1, NEW.seq, NEW.hash)
      ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash;
  END;
`;

/**
 * Brings the data of a schema 1–3 database in line with {@link CONSTRAINTS} before they are
 * created. Runs once, in the migration's transaction.
 */
const TO_SCHEMA_4 = `
  -- Before schema 2 any string was accepted as a signing key, so a key may have several users.
  -- The oldest keeps it (lookups already answered with the oldest); the later ones lose it and
  -- must register a key again, which now needs proof of possession.
  UPDATE users SET sign_pk = NULL
  WHERE sign_pk IS NOT NULL AND user_id <> (
    SELECT first.user_id FROM users AS first WHERE first.sign_pk = users.sign_pk
    ORDER BY first.created_at, first.user_id LIMIT 1
  );
  DROP INDEX IF EXISTS users_sign_pk;
  -- Blobs written before schema 3 have no head; their current version is where they stand.
  INSERT INTO blob_heads (name, version) SELECT name, version FROM objects WHERE version > 0 AND true
    ON CONFLICT (name) DO UPDATE SET version = max(version, excluded.version);
  -- Raw bytes without their object (only a handle with foreign keys off could leave them).
  DELETE FROM blob_data WHERE name NOT IN (SELECT name FROM objects);
  -- A log without its head (there should be none) continues from its newest entry.
  INSERT OR IGNORE INTO audit_head (one, seq, hash) SELECT 1, seq, hash FROM audit ORDER BY seq DESC LIMIT 1;
`;

/**
 * Creates the relay tables, or migrates a file of an older schema in one transaction (a failed
 * migration leaves it as it was). Unavailable for a file of a newer schema than this code knows.
 */
export function migrateRelaySchema(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new SyncError(
      'Unavailable',
      `the relay database has schema ${version}; this relay knows up to ${SCHEMA_VERSION}`,
    );
  }
  if (version === SCHEMA_VERSION) return;
  // One transaction: a failed migration leaves the file as it was, at its old version.
  db.transaction(() => {
    // Schema 1 tables exist without the columns schema 2 added; CREATE IF NOT EXISTS keeps them as they are.
    const objectColumns = db.pragma('table_info(objects)') as { name: string }[];
    if (objectColumns.length > 0 && !objectColumns.some((c) => c.name === 'min_epoch')) {
      db.exec('ALTER TABLE objects ADD COLUMN min_epoch INTEGER NOT NULL DEFAULT 0');
    }
    // Keys from before schema 9 name no device.
    const keyColumns = db.pragma('table_info(api_keys)') as { name: string }[];
    if (keyColumns.length > 0 && !keyColumns.some((c) => c.name === 'device_id')) {
      db.exec('ALTER TABLE api_keys ADD COLUMN device_id TEXT');
    }
    db.exec(SCHEMA);
    if (version < 4) db.exec(TO_SCHEMA_4);
    db.exec(CONSTRAINTS);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}
