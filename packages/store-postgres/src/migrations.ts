import { SyncError } from '@scopesync/core';
import type pg from 'pg';
import { toSyncError } from './postgres-errors.ts';

/** The default PostgreSQL schema the stores keep their tables in. */
export const DEFAULT_SCHEMA = 'scopesync';

/** The table recording which migrations ran, one row per version. */
export const MIGRATIONS_TABLE = 'scopesync_schema_migrations';

/** A schema name the stores accept: a plain lowercase identifier, so it never needs escaping beyond quotes. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The first key of the two-key advisory lock migrations take (the second is the schema name's
 * hash): "scps" in ASCII, so that it does not collide with an application's one-key locks.
 */
const LOCK_CLASS = 0x73637073;

/** One step of the schema: applied once, in version order, inside the migrating transaction. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  /** The SQL, given the quoted schema name to qualify every table with. */
  readonly sql: (schema: string) => string;
}

/**
 * The schema, version by version. Append new versions; never edit one that has shipped.
 * Text keys are `COLLATE "C"` so that ordering is by bytes, as in SQLite and JavaScript for the
 * BMP, and independent of the database's locale.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'documents, relay records, audit chain, challenges',
    sql: (s) => `
      -- The highest seq ever given per document. Appends raise it with UPDATE … RETURNING, which
      -- keeps the row locked until commit: seq order is commit order, and removal or compaction
      -- never lets a seq be reused.
      CREATE TABLE ${s}.doc_heads (
        doc text COLLATE "C" PRIMARY KEY,
        -- Capped at Number.MAX_SAFE_INTEGER: an append past it fails instead of committing a seq
        -- JavaScript cannot represent.
        seq bigint NOT NULL CHECK (seq BETWEEN 0 AND 9007199254740991)
      );
      CREATE TABLE ${s}.doc_entries (
        doc  text COLLATE "C" NOT NULL,
        seq  bigint NOT NULL CHECK (seq > 0),
        data bytea NOT NULL,
        PRIMARY KEY (doc, seq)
      );

      CREATE TABLE ${s}.users (
        user_id     text COLLATE "C" PRIMARY KEY,
        level       smallint NOT NULL,
        device_name text NOT NULL,
        sign_pk     text COLLATE "C",
        box_pk      text,
        created_at  bigint NOT NULL
      );
      -- One signing key identifies one user, whichever relay registers it.
      CREATE UNIQUE INDEX users_sign_pk ON ${s}.users (sign_pk) WHERE sign_pk IS NOT NULL;
      CREATE TABLE ${s}.api_keys (
        key_hash   text COLLATE "C" PRIMARY KEY,
        user_id    text COLLATE "C" NOT NULL REFERENCES ${s}.users (user_id) ON DELETE CASCADE,
        created_at bigint NOT NULL,
        revoked_at bigint
      );
      CREATE INDEX api_keys_user ON ${s}.api_keys (user_id);

      CREATE TABLE ${s}.objects (
        name       text COLLATE "C" PRIMARY KEY,
        owner      text NOT NULL,
        read       smallint NOT NULL,
        write      smallint NOT NULL,
        encrypted  boolean NOT NULL,
        min_epoch  integer NOT NULL DEFAULT 0,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        size       bigint NOT NULL DEFAULT 0,
        version    bigint NOT NULL DEFAULT 0
      );
      -- Raw blob bytes apart from the metadata, so that reading metadata never reads megabytes.
      CREATE TABLE ${s}.blob_data (
        name text COLLATE "C" PRIMARY KEY REFERENCES ${s}.objects (name) ON DELETE CASCADE,
        data bytea NOT NULL
      );
      -- The highest blob version each name ever had; it outlives the object, so a blob deleted
      -- and created again never reuses a version an old If-Match holds.
      CREATE TABLE ${s}.blob_heads (
        name    text COLLATE "C" PRIMARY KEY,
        version bigint NOT NULL
      );
      CREATE TABLE ${s}.shares (
        blob_id    text COLLATE "C" NOT NULL,
        user_id    text COLLATE "C" NOT NULL,
        level      text NOT NULL CHECK (level IN ('read_only', 'read_write')),
        granted_by text NOT NULL,
        granted_at bigint NOT NULL,
        PRIMARY KEY (blob_id, user_id)
      );
      CREATE TABLE ${s}.key_grants (
        blob_id    text COLLATE "C" NOT NULL,
        user_id    text COLLATE "C" NOT NULL,
        epoch      integer NOT NULL,
        sealed_key bytea NOT NULL,
        grant_data bytea NOT NULL,
        granted_by text NOT NULL,
        granted_at bigint NOT NULL,
        PRIMARY KEY (blob_id, user_id, epoch)
      );
      CREATE TABLE ${s}.wrapped_keys (
        doc_name   text COLLATE "C" NOT NULL,
        key_id     text COLLATE "C" NOT NULL,
        epoch      integer NOT NULL,
        wrapped    bytea NOT NULL,
        created_at bigint NOT NULL,
        PRIMARY KEY (doc_name, key_id)
      );

      -- One hash chain whoever writes: seq is unique, and so is prev_hash, so two entries can
      -- never follow the same one (no fork), even if a writer skipped the head lock.
      CREATE TABLE ${s}.audit (
        seq       bigint PRIMARY KEY CHECK (seq > 0),
        id        text NOT NULL,
        ts        bigint NOT NULL,
        accessor  text NOT NULL,
        target    text COLLATE "C" NOT NULL,
        scope     text NOT NULL,
        key       text NOT NULL,
        action    text NOT NULL,
        result    text NOT NULL,
        channel   text NOT NULL,
        reason    text NOT NULL,
        prev_hash text NOT NULL UNIQUE,
        hash      text NOT NULL
      );
      CREATE INDEX audit_target ON ${s}.audit (target, seq);
      -- The chain head, written in the same transaction as the entry (deleting the newest entries
      -- no longer matches it). The row always exists, seq 0 for an empty log, so every appender
      -- has a row to lock, the first one included.
      CREATE TABLE ${s}.audit_head (
        one  smallint PRIMARY KEY CHECK (one = 1),
        seq  bigint NOT NULL,
        hash text NOT NULL
      );
      INSERT INTO ${s}.audit_head (one, seq, hash) VALUES (1, 0, repeat('0', 64));

      CREATE TABLE ${s}.mod_grants (
        source     text COLLATE "C" NOT NULL,
        position   integer NOT NULL,
        target     text NOT NULL,
        permission text NOT NULL,
        keys       jsonb,
        expires_at bigint,
        PRIMARY KEY (source, position)
      );

      -- Registration challenges, redeemable once by any relay.
      CREATE TABLE ${s}.challenges (
        challenge  text COLLATE "C" PRIMARY KEY,
        expires_at bigint NOT NULL
      );
      CREATE INDEX challenges_expiry ON ${s}.challenges (expires_at);
    `,
  },
  {
    version: 2,
    name: 'member lists and signed heads of encrypted blobs',
    sql: (s) => `
      -- Every owner-signed version of an encrypted blob's member list; never replaced.
      CREATE TABLE ${s}.member_lists (
        blob_id    text COLLATE "C" NOT NULL,
        version    integer NOT NULL CHECK (version > 0),
        epoch      bigint NOT NULL,
        key_id     text COLLATE "C" NOT NULL,
        list       bytea NOT NULL,
        created_at bigint NOT NULL,
        PRIMARY KEY (blob_id, version)
      );
      -- Each member's signed view of an encrypted blob's history (opaque to the relay).
      CREATE TABLE ${s}.signed_heads (
        blob_id    text COLLATE "C" NOT NULL,
        user_id    text COLLATE "C" NOT NULL,
        head       bytea NOT NULL,
        updated_at bigint NOT NULL,
        PRIMARY KEY (blob_id, user_id)
      );
    `,
  },
  {
    version: 3,
    name: 'shares by user ("shared with me")',
    sql: (s) => `CREATE INDEX shares_user ON ${s}.shares (user_id, blob_id);`,
  },
  {
    version: 4,
    name: 'retired signing keys (identity rotation) and device lists',
    sql: (s) => `
      -- Signing keys their users rotated away from, with the statement that retired each: never
      -- registered or linked again, and the chain clients follow from a pinned key. Kept when the
      -- user goes: a retired key must stay retired.
      CREATE TABLE ${s}.retired_keys (
        sign_pk      text COLLATE "C" PRIMARY KEY,
        user_id      text COLLATE "C" NOT NULL,
        next_sign_pk text COLLATE "C" NOT NULL,
        next_box_pk  text COLLATE "C" NOT NULL,
        relay_id     text NOT NULL,
        challenge    text NOT NULL,
        signature    bytea NOT NULL,
        countersignature bytea NOT NULL,
        retired_at   bigint NOT NULL
      );
      CREATE INDEX retired_keys_user ON ${s}.retired_keys (user_id, retired_at, sign_pk);
      -- Every version of a user's device list, signed by the identity key; never replaced.
      CREATE TABLE ${s}.device_lists (
        user_id    text COLLATE "C" NOT NULL,
        version    integer NOT NULL CHECK (version > 0),
        list       bytea NOT NULL,
        created_at bigint NOT NULL,
        PRIMARY KEY (user_id, version)
      );
    `,
  },
  {
    version: 5,
    name: 'objects by owner ("my blobs")',
    sql: (s) => `CREATE INDEX objects_owner ON ${s}.objects (owner, name);`,
  },
  {
    version: 6,
    name: 'API keys bound to a device of the device list',
    // Null for a key bound to no device (every key from before): a list without it revokes the key.
    sql: (s) => `ALTER TABLE ${s}.api_keys ADD COLUMN device_id text COLLATE "C";`,
  },
];

/** The newest schema version this package knows. */
export const SCHEMA_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/** `schema` checked and double-quoted, ready to qualify table names. BadRequest for anything but a plain lowercase identifier. */
export function quoteSchema(schema: string): string {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema)) {
    throw new SyncError(
      'BadRequest',
      `a PostgreSQL schema name must match ${SCHEMA_NAME.source}, got ${JSON.stringify(schema)}`,
    );
  }
  return `"${schema}"`;
}

/**
 * Creates the schema `schema` if needed and applies the migrations it lacks, in one transaction
 * under an advisory lock on the schema's name: relays starting together apply each version
 * once, and the later ones find it done. Resolves with the schema version. Unavailable when the
 * database holds a newer version than this package knows (an older relay must not write to it).
 */
export async function migrate(
  pool: pg.Pool,
  schema: string,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number> {
  const s = quoteSchema(schema);
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw toSyncError(error, `cannot migrate schema ${schema}`);
  }
  let broken = false;
  try {
    await client.query('BEGIN');
    // Held until COMMIT or ROLLBACK, and released by the server if this connection dies.
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_CLASS, schema]);
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${s}`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${s}.${MIGRATIONS_TABLE} (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const applied = new Set(
      (await client.query<{ version: number }>(`SELECT version FROM ${s}.${MIGRATIONS_TABLE}`)).rows.map(
        (r) => r.version,
      ),
    );
    const newest = Math.max(0, ...applied);
    if (newest > latest) {
      throw new SyncError(
        'Unavailable',
        `PostgreSQL schema ${schema} is at version ${newest}; this relay knows up to ${latest}`,
      );
    }
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql(s));
      await client.query(`INSERT INTO ${s}.${MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)`, [
        m.version,
        m.name,
      ]);
    }
    await client.query('COMMIT');
    return Math.max(newest, latest);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {
      broken = true; // the connection is gone; the error below says why
    });
    throw toSyncError(error, `cannot migrate schema ${schema}`);
  } finally {
    client.release(broken);
  }
}
