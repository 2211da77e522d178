import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSyncError, Level, type ObjectRecord } from '@scopesync/core';
import { runRelayStoreSuite } from '@scopesync/testing';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteRelayStore } from './sqlite-relay-store.ts';

runRelayStoreSuite('SqliteRelayStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'scopesync-relay-store-'));
  const path = join(dir, 'relay.sqlite');
  return {
    subject: new SqliteRelayStore({ path }),
    reopen: async () => new SqliteRelayStore({ path }),
    teardown: () => rm(dir, { recursive: true, force: true }),
  };
});

runRelayStoreSuite('SqliteRelayStore in a lent database handle', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'scopesync-relay-store-lent-'));
  const path = join(dir, 'shared.sqlite');
  const handles: Database.Database[] = [];
  const open = (): SqliteRelayStore => {
    const database = new Database(path);
    database.pragma('journal_mode = WAL');
    handles.push(database);
    return new SqliteRelayStore({ database });
  };
  return {
    subject: open(),
    reopen: async () => open(),
    teardown: async () => {
      for (const handle of handles) handle.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

// SQLite specifics below; the contract itself is the suite above.

const USER = 'user_00000000000000a1';
const OTHER = 'user_00000000000000b0';

/** The tables as schema 3 (the last before the invariants moved into the schema) created them. */
const SCHEMA_3 = `
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

describe('SqliteRelayStore', () => {
  let dir: string;
  let path: string;
  const open: { close(): unknown }[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scopesync-sqlite-relay-'));
    path = join(dir, 'relay.sqlite');
  });
  afterEach(async () => {
    for (const x of open.splice(0)) await x.close();
    await rm(dir, { recursive: true, force: true });
  });

  const store = (): SqliteRelayStore => {
    const s = new SqliteRelayStore({ path });
    open.push(s);
    return s;
  };

  it('uses WAL, and a second connection (the CLI) sees and makes changes while the relay runs', async () => {
    const relay = store();
    const cli = store();
    await cli.createUser(
      { userId: USER, level: Level.User, deviceName: 'd', signPk: null, boxPk: null, createdAt: 1 },
      { keyHash: 'h', userId: USER, createdAt: 1, revokedAt: null },
    );
    expect((await relay.getUser(USER))?.level).toBe(Level.User);
    await cli.setUserLevel(USER, Level.Admin);
    expect((await relay.getUser(USER))?.level).toBe(Level.Admin);
    const db = new Database(path, { readonly: true });
    open.push(db);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('refuses a database from a newer relay instead of guessing', async () => {
    store();
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();
    let error: unknown;
    try {
      store();
    } catch (e) {
      error = e;
    }
    expect(isSyncError(error, 'Unavailable')).toBe(true);
  });

  it('migrates a schema 1 database in place, keeping its rows', async () => {
    // The schema 1 tables this test needs, as the first relay created them.
    const old = new Database(path);
    old.exec(`
      CREATE TABLE users (user_id TEXT NOT NULL PRIMARY KEY, level INTEGER NOT NULL, device_name TEXT NOT NULL,
        sign_pk TEXT, box_pk TEXT, created_at INTEGER NOT NULL);
      CREATE TABLE objects (name TEXT NOT NULL PRIMARY KEY, owner TEXT NOT NULL, read INTEGER NOT NULL,
        write INTEGER NOT NULL, encrypted INTEGER NOT NULL, created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 0);
      INSERT INTO objects VALUES ('USER_PRIVATE/${USER}/n', '${USER}', 1, 1, 1, 1, 2, 0, 0);
      INSERT INTO objects VALUES ('blob/old', '${USER}', 0, 0, 0, 1, 2, 3, 5);
      INSERT INTO users VALUES ('${USER}', 1, 'd', 'c2lnbg', NULL, 1);
    `);
    old.pragma('user_version = 1');
    old.close();
    const s = store();
    expect(await s.getObject(`USER_PRIVATE/${USER}/n`)).toMatchObject({ encrypted: true, minEpoch: 0 });
    await s.updateObject(`USER_PRIVATE/${USER}/n`, { minEpoch: 4 });
    expect((await s.getObject(`USER_PRIVATE/${USER}/n`))?.minEpoch).toBe(4);
    expect((await s.findUserBySignPk('c2lnbg'))?.userId).toBe(USER);
    await s.putKeyGrant({
      blobId: 'b',
      userId: USER,
      epoch: 1,
      sealedKey: new Uint8Array([1]),
      grant: new Uint8Array([2]),
      grantedBy: USER,
      grantedAt: 1,
    });
    expect(await s.listKeyGrants('b')).toHaveLength(1);
    // A blob from before blob_heads goes on from its own version.
    const old5 = (await s.getObject('blob/old')) as ObjectRecord;
    expect(old5.version).toBe(5);
    const data = new Uint8Array([1]);
    expect(await s.putBlobData('blob/old', { data, expectedVersion: 5, create: old5, now: 3 })).toMatchObject(
      {
        version: 6,
      },
    );
    const db = new Database(path, { readonly: true });
    open.push(db);
    expect(db.pragma('user_version', { simple: true })).toBe(9);
  });

  it('migrates a schema 3 database in place: its data stays, and the schema takes over the invariants', async () => {
    const old = new Database(path);
    old.exec(SCHEMA_3);
    old.exec(`
      INSERT INTO users VALUES ('${USER}', 1, 'first', 'c2lnbg', 'Ym94', 1);
      INSERT INTO users VALUES ('${OTHER}', 1, 'copy', 'c2lnbg', NULL, 2);
      INSERT INTO api_keys VALUES ('h1', '${USER}', 1, NULL);
      INSERT INTO api_keys VALUES ('h2', '${OTHER}', 2, 5);
      INSERT INTO objects VALUES ('blob/b', '${USER}', 0, 0, 1, 3, 1, 2, 2, 7);
      INSERT INTO objects VALUES ('blob/c', '${USER}', 0, 0, 0, 0, 1, 2, 1, 2);
      INSERT INTO blob_data VALUES ('blob/b', x'0102');
      INSERT INTO blob_data VALUES ('blob/c', x'03');
      INSERT INTO blob_heads VALUES ('blob/gone', 4);
      INSERT INTO shares VALUES ('b', '${OTHER}', 'read_only', '${USER}', 3);
      INSERT INTO key_grants VALUES ('b', '${OTHER}', 3, x'01', x'02', '${USER}', 3);
      INSERT INTO wrapped_keys VALUES ('blob/b', 'aa', 3, x'09', 3);
      INSERT INTO audit VALUES (1, 'AUDIT::a::b::1', 1, 'a', 'b', 'blob', 'b', 'read', 'ok', 'http', 'r',
        '${'0'.repeat(64)}', 'h1');
      INSERT INTO audit_head VALUES (1, 1, 'h1');
      INSERT INTO mod_grants VALUES ('Chat', 0, 'Scores', 'read', NULL, NULL);
    `);
    old.pragma('user_version = 3');
    old.close();

    const s = store();
    expect(await s.getUser(USER)).toMatchObject({ deviceName: 'first', signPk: 'c2lnbg', boxPk: 'Ym94' });
    // The later holder of a duplicated signing key loses it; everything else of theirs stays.
    expect(await s.getUser(OTHER)).toMatchObject({ deviceName: 'copy', signPk: null });
    expect(await s.getKey('h2')).toEqual({ keyHash: 'h2', userId: OTHER, createdAt: 2, revokedAt: 5 });
    // Keys from before schema 9 name no device; new ones may.
    await s.addKey({ keyHash: 'h3', userId: USER, createdAt: 3, revokedAt: null, deviceId: 'ab'.repeat(16) });
    expect((await s.listKeys(USER)).map((k) => [k.keyHash, k.deviceId])).toEqual([
      ['h1', undefined],
      ['h3', 'ab'.repeat(16)],
    ]);
    expect(await s.getObject('blob/b')).toMatchObject({ encrypted: true, minEpoch: 3, size: 2, version: 7 });
    expect(await s.getBlobData('blob/b')).toEqual(new Uint8Array([1, 2]));
    expect(await s.listShares('b')).toHaveLength(1);
    expect(await s.listKeyGrants('b')).toHaveLength(1);
    expect(await s.listWrappedKeys('blob/b')).toHaveLength(1);
    expect(await s.listGrants('Chat')).toHaveLength(1);
    expect(await s.auditHead()).toEqual({ seq: 1, hash: 'h1' });
    expect(await s.countUsers()).toBe(2);

    // Now the schema keeps the invariants.
    const raw = new Database(path);
    open.push(raw);
    expect(raw.pragma('user_version', { simple: true })).toBe(9);
    expect(() => raw.prepare(`UPDATE users SET sign_pk = 'c2lnbg' WHERE user_id = '${OTHER}'`).run()).toThrow(
      /UNIQUE/,
    );
    await expect(s.setUserKeys(OTHER, { signPk: 'c2lnbg', boxPk: null })).rejects.toMatchObject({
      kind: 'Conflict',
    });
    // The blob version head counts from the versions the old file had, with or without a head row.
    const c = (await s.getObject('blob/c')) as ObjectRecord;
    expect(await s.putBlobData('blob/c', { data: new Uint8Array([1]), create: c, now: 9 })).toMatchObject({
      version: 3,
    });
    expect(
      await s.putBlobData('blob/gone', { data: new Uint8Array([1]), expectedVersion: 0, create: c, now: 9 }),
    ).toMatchObject({ version: 5 });
    expect(await s.deleteObject('blob/b')).toBe(true);
    expect(await s.listShares('b')).toEqual([]);
    expect(await s.listKeyGrants('b')).toEqual([]);
    expect(await s.listWrappedKeys('blob/b')).toEqual([]);
    expect(
      await s.putBlobData('blob/b', { data: new Uint8Array([1]), expectedVersion: 0, create: c, now: 9 }),
    ).toMatchObject({ version: 8 });
  });

  it('keeps the invariants against writers that bypass the store (the CLI, a sqlite3 shell)', async () => {
    const s = store();
    await s.createUser(
      { userId: USER, level: Level.User, deviceName: 'd', signPk: 'c2lnbg', boxPk: null, createdAt: 1 },
      { keyHash: 'h1', userId: USER, createdAt: 1, revokedAt: null },
    );
    const create = { name: 'blob/b', owner: USER, read: 0, write: 0, encrypted: false, minEpoch: 0 } as const;
    const record = { ...create, createdAt: 1, updatedAt: 1, size: 0, version: 0 };
    await s.putBlobData('blob/b', { data: new Uint8Array([1]), create: record, now: 1 });
    await s.putBlobData('blob/b', { data: new Uint8Array([2]), create: record, now: 2 });
    await s.putShare({ blobId: 'b', userId: OTHER, level: 'read_only', grantedBy: USER, grantedAt: 1 });
    await s.putKeyGrant({
      blobId: 'b',
      userId: OTHER,
      epoch: 1,
      sealedKey: new Uint8Array([1]),
      grant: new Uint8Array([2]),
      grantedBy: USER,
      grantedAt: 1,
    });
    const raw = new Database(path);
    open.push(raw);
    expect(() =>
      raw.prepare(`INSERT INTO users VALUES ('${OTHER}', 1, 'd', 'c2lnbg', NULL, 2)`).run(),
    ).toThrow(/UNIQUE/);
    expect(() =>
      raw
        .prepare(`INSERT INTO api_keys (key_hash, user_id, created_at) VALUES ('h9', 'user_nobody', 1)`)
        .run(),
    ).toThrow(/FOREIGN KEY/);
    expect(() => raw.prepare(`UPDATE objects SET version = 1 WHERE name = 'blob/b'`).run()).toThrow(
      /blob version repeats/,
    );
    expect(() =>
      raw
        .prepare(
          `INSERT INTO audit VALUES (5, 'x', 1, 'a', 'b', 's', 'k', 'read', 'ok', 'http', 'r', 'p', 'h')`,
        )
        .run(),
    ).toThrow(/does not follow/);
    raw.prepare(`DELETE FROM shares WHERE blob_id = 'b'`).run();
    expect(await s.listKeyGrants('b')).toEqual([]);
    raw.prepare(`DELETE FROM objects WHERE name = 'blob/b'`).run();
    expect(await s.getBlobData('blob/b')).toBeNull();
    expect(
      await s.putBlobData('blob/b', {
        data: new Uint8Array([3]),
        expectedVersion: 0,
        create: record,
        now: 3,
      }),
    ).toMatchObject({ version: 3 });
  });

  it('refuses a lent database that does not enforce foreign keys', () => {
    const db = new Database(':memory:');
    open.push(db);
    db.pragma('foreign_keys = OFF');
    let error: unknown;
    try {
      new SqliteRelayStore({ database: db });
    } catch (e) {
      error = e;
    }
    expect(isSyncError(error, 'BadRequest')).toBe(true);
  });

  it('holds a transaction open across awaits without letting another connection see it half done', async () => {
    const relay = store();
    const cli = store();
    let release = (): void => undefined;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const record = (name: string): ObjectRecord => ({
      name,
      owner: USER,
      read: 0,
      write: 0,
      encrypted: false,
      minEpoch: 0,
      createdAt: 1,
      updatedAt: 1,
      size: 0,
      version: 0,
    });
    let started = (): void => undefined;
    const isOpen = new Promise<void>((r) => {
      started = r;
    });
    const tx = relay.transaction(async (t) => {
      await t.createObject(record('PUBLIC_RW/_/one'));
      started();
      await released;
      await t.createObject(record('PUBLIC_RW/_/two'));
    });
    await isOpen;
    // WAL: the other connection reads the last commit, without waiting.
    expect(await cli.listObjects({ prefix: 'PUBLIC_RW/_/', limit: 5 })).toEqual([]);
    release();
    await tx;
    expect((await cli.listObjects({ prefix: 'PUBLIC_RW/_/', limit: 5 })).map((o) => o.name)).toEqual([
      'PUBLIC_RW/_/one',
      'PUBLIC_RW/_/two',
    ]);
  });

  it('lives in a handle it is given, without closing it', async () => {
    const db = new Database(':memory:');
    open.push(db);
    const s = new SqliteRelayStore({ database: db });
    await s.putShare({ blobId: 'b', userId: USER, level: 'read_only', grantedBy: 'x', grantedAt: 1 });
    await s.close();
    expect(db.open).toBe(true);
    expect(db.prepare('SELECT count(*) AS n FROM shares').get()).toEqual({ n: 1 });
  });

  it('keeps the audit head in the same transaction as the entry', async () => {
    const s = store();
    const seal = (head: { seq: number; hash: string } | null) => ({
      seq: (head?.seq ?? 0) + 1,
      id: 'AUDIT::a::b::1',
      ts: 1,
      accessor: 'a',
      target: 'b',
      scope: 'blob',
      key: 'k',
      action: 'read',
      result: 'ok' as const,
      channel: 'http' as const,
      reason: 'r',
      prevHash: head?.hash ?? '0'.repeat(64),
      hash: `h${(head?.seq ?? 0) + 1}`,
    });
    await s.appendAudit(seal);
    // A seal that throws leaves neither an entry nor a moved head.
    await expect(
      s.appendAudit(() => {
        throw new Error('boom');
      }),
    ).rejects.toThrow();
    await s.appendAudit(seal);
    expect(await s.auditHead()).toEqual({ seq: 2, hash: 'h2' });
    expect((await s.queryAudit({})).map((e) => e.seq)).toEqual([1, 2]);
  });
});
