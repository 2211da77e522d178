import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSyncError, Level, type ObjectRecord } from '@scopesync/core';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteRelayStore } from './sqlite-relay-store.ts';

// SQLite specifics. The RelayStore contract itself runs from @scopesync/relay's shared suite
// (packages/relay/src/relay-store.test.ts), which depends on this package.

const USER = 'user_00000000000000a1';

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
    expect(db.pragma('user_version', { simple: true })).toBe(3);
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
