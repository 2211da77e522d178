import { randomBytes } from 'node:crypto';
import { cpSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuditRecord, hashAuditEntry, sealAuditEntry } from '@scopesync/relay';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from './support/http-client.ts';
import { runCli as run, startCli as start } from './support/relay-cli.ts';

/*
 * docs/security.md, "Audit chain": someone with write access to the database but not to the
 * audit key and anchor cannot make `scopesync-relay audit verify` say ok after removing
 * entries — not the newest ones, not by recomputing the chain, not by emptying the log.
 */

let work: string;
/** A data dir whose relay wrote audit entries and stopped (anchoring its head). */
let pristine: string;
let entries: number;

const ROW =
  'seq, id, ts, accessor, target, scope, key, action, result, channel, reason, prev_hash AS prevHash, hash';

function rowsOf(db: Database.Database): AuditRecord[] {
  return db.prepare(`SELECT ${ROW} FROM audit ORDER BY seq`).all() as AuditRecord[];
}

/** Replaces the whole log by `records`, re-chained with the exported (unkeyed) hash function. */
function rewrite(db: Database.Database, records: readonly AuditRecord[]): void {
  db.exec('DELETE FROM audit; DELETE FROM audit_head;');
  const insert = db.prepare(
    `INSERT INTO audit (seq, id, ts, accessor, target, scope, key, action, result, channel, reason, prev_hash, hash)
     VALUES (@seq, @id, @ts, @accessor, @target, @scope, @key, @action, @result, @channel, @reason, @prevHash, @hash)`,
  );
  let prevHash = '0'.repeat(64);
  records.forEach((record, i) => {
    const unsealed = { ...record, seq: i + 1, prevHash };
    const hash = hashAuditEntry(unsealed);
    insert.run({ ...unsealed, hash });
    prevHash = hash;
  });
}

/** A copy of the pristine data dir, changed by `attack` through SQL. */
function attacked(name: string, attack: (db: Database.Database) => void): string {
  const dir = join(work, name);
  cpSync(pristine, dir, { recursive: true });
  const db = new Database(join(dir, 'relay.sqlite'));
  try {
    attack(db);
  } finally {
    db.close();
  }
  return dir;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'scopesync-audit-'));
  pristine = join(work, 'pristine');
  const admin = JSON.parse(
    (await run(['admin', 'create', '--data-dir', pristine, '--device-name', 'ops'])).stdout,
  ) as {
    key: string;
  };
  const relay = await start(['--port', '0', '--data-dir', pristine]);
  // Denied reads are audited: six entries.
  for (let i = 0; i < 6; i++) await call(relay.url, 'GET', `/blob/missing-${i}`, { key: admin.key });
  relay.child.kill('SIGTERM');
  expect((await relay.finished).code).toBe(0);
  const db = new Database(join(pristine, 'relay.sqlite'), { readonly: true });
  entries = rowsOf(db).length;
  db.close();
  expect(entries).toBe(6);
});
afterAll(() => rm(work, { recursive: true, force: true }));

describe('scopesync-relay audit verify, with the key and anchor the relay keeps beside its data', () => {
  it('says ok for an untouched log, anchored at its last entry', async () => {
    const ok = await run(['audit', 'verify', '--data-dir', pristine]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout.trim()).toMatch(new RegExp(`^ok ${entries} entries \\(anchored at seq ${entries}, `));
    // The key was created for the owner only.
    expect(statSync(join(pristine, 'audit.key')).mode & 0o777).toBe(0o600);
  });

  it('detects deleting the newest entries and moving audit_head back', async () => {
    const dir = attacked('truncated', (db) => {
      db.exec(`DELETE FROM audit WHERE seq > ${entries - 2};
        UPDATE audit_head SET seq = ${entries - 2}, hash = (SELECT hash FROM audit WHERE seq = ${entries - 2});`);
    });
    const verdict = await run(['audit', 'verify', '--data-dir', dir]);
    expect(verdict.code).toBe(1);
    expect(verdict.stderr).toContain(`entries ${entries - 1}–${entries} are missing`);
  });

  it('detects deleting an entry and recomputing the chain with the exported hash function', async () => {
    const dir = attacked('rechained', (db) => {
      rewrite(
        db,
        rowsOf(db).filter((r) => r.seq !== 2),
      );
    });
    const verdict = await run(['audit', 'verify', '--data-dir', dir]);
    expect(verdict.code).toBe(1);
    expect(verdict.stderr).toMatch(/audit chain broken at entry 1 .*not keyed/);
  });

  it('detects a chain recomputed with a guessed key', async () => {
    const dir = attacked('guessed', (db) => {
      const records = rowsOf(db).filter((r) => r.seq !== 2);
      db.exec('DELETE FROM audit; DELETE FROM audit_head;');
      let head: { seq: number; hash: string } | null = null;
      const insert = db.prepare(
        `INSERT INTO audit (seq, id, ts, accessor, target, scope, key, action, result, channel, reason, prev_hash, hash)
         VALUES (@seq, @id, @ts, @accessor, @target, @scope, @key, @action, @result, @channel, @reason, @prevHash, @hash)`,
      );
      for (const r of records) {
        const sealed = sealAuditEntry(head, r, r.ts, new Uint8Array(32));
        insert.run(sealed);
        head = { seq: sealed.seq, hash: sealed.hash };
      }
    });
    const verdict = await run(['audit', 'verify', '--data-dir', dir]);
    expect(verdict.code).toBe(1);
    expect(verdict.stderr).toMatch(/entry 1 .*HMAC/);
  });

  it('detects an emptied log (DELETE FROM audit; DELETE FROM audit_head)', async () => {
    const dir = attacked('emptied', (db) => db.exec('DELETE FROM audit; DELETE FROM audit_head;'));
    const verdict = await run(['audit', 'verify', '--data-dir', dir]);
    expect(verdict.code).toBe(1);
    expect(verdict.stdout).toBe('');
    expect(verdict.stderr).toContain(`entries 1–${entries} are missing`);
  });

  it('refuses a forged anchor and a missing one', async () => {
    const forged = attacked('forged-anchor', () => undefined);
    const anchorFile = join(forged, 'audit-anchor.json');
    const anchor = JSON.parse(readFileSync(anchorFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(anchorFile, JSON.stringify({ ...anchor, seq: 0 }));
    const verdict = await run(['audit', 'verify', '--data-dir', forged]);
    expect(verdict.code).toBe(1);
    expect(verdict.stderr).toContain('does not verify with the audit key');
    await rm(anchorFile);
    const missing = await run(['audit', 'verify', '--data-dir', forged]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('audit anchor missing');
  });

  it('keeps a log from before the key verifiable as unkeyed up to its last old entry', async () => {
    const dir = join(work, 'legacy');
    const admin = JSON.parse(
      (await run(['admin', 'create', '--data-dir', dir, '--device-name', 'ops'])).stdout,
    ) as {
      key: string;
    };
    // Two entries written by a relay that had no key (plain SHA-256 chain).
    const db = new Database(join(dir, 'relay.sqlite'));
    const insert = db.prepare(
      `INSERT INTO audit (seq, id, ts, accessor, target, scope, key, action, result, channel, reason, prev_hash, hash)
       VALUES (@seq, @id, @ts, @accessor, @target, @scope, @key, @action, @result, @channel, @reason, @prevHash, @hash)`,
    );
    let head: { seq: number; hash: string } | null = null;
    for (const key of ['old-1', 'old-2']) {
      const event = {
        accessor: 'guest',
        target: '00000000-0000-0000-0000-000000000000',
        scope: 'blob',
        key,
        action: 'read',
        result: 'denied',
        channel: 'http',
        reason: 'not found',
      } as const;
      const sealed = sealAuditEntry(head, event, Date.now());
      insert.run(sealed);
      head = { seq: sealed.seq, hash: sealed.hash };
    }
    db.close();
    const relay = await start(['--port', '0', '--data-dir', dir]);
    await call(relay.url, 'GET', '/blob/missing-new', { key: admin.key });
    relay.child.kill('SIGTERM');
    expect((await relay.finished).code).toBe(0);
    const ok = await run(['audit', 'verify', '--data-dir', dir]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout.trim()).toMatch(/^ok 3 entries \(unkeyed up to seq 2; anchored at seq 3, /);
  });
});

describe('scopesync-relay audit verify on PostgreSQL, with --audit-dir', () => {
  const DATABASE_URL = process.env.SCOPESYNC_TEST_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432/test';
  const schema = `scopesync_audit_${randomBytes(5).toString('hex')}`;
  let auditDir: string;
  const engine = (): string[] => ['--database-url', DATABASE_URL, '--database-schema', schema];
  const verify = (): ReturnType<typeof run> => run(['audit', 'verify', ...engine(), '--audit-dir', auditDir]);

  async function sql(text: string): Promise<void> {
    const db = new pg.Client({ connectionString: DATABASE_URL });
    await db.connect();
    try {
      await db.query(text);
    } finally {
      await db.end();
    }
  }

  beforeAll(async () => {
    auditDir = join(work, 'pg-audit');
    const admin = JSON.parse(
      (await run(['admin', 'create', ...engine(), '--device-name', 'ops'])).stdout,
    ) as {
      key: string;
    };
    const relay = await start(['--port', '0', ...engine(), '--audit-dir', auditDir]);
    for (let i = 0; i < 4; i++) await call(relay.url, 'GET', `/blob/missing-${i}`, { key: admin.key });
    relay.child.kill('SIGTERM');
    expect((await relay.finished).code).toBe(0);
  });
  afterAll(() => sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));

  it('says ok, then detects the newest entries deleted, and the log emptied', async () => {
    const ok = await verify();
    expect(ok.stderr).toBe('');
    expect(ok.stdout.trim()).toMatch(/^ok 4 entries \(anchored at seq 4, /);
    await sql(`DELETE FROM ${schema}.audit WHERE seq > 2;
      UPDATE ${schema}.audit_head SET seq = 2, hash = (SELECT hash FROM ${schema}.audit WHERE seq = 2)`);
    const truncated = await verify();
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toContain('entries 3–4 are missing');
    await sql(`DELETE FROM ${schema}.audit; UPDATE ${schema}.audit_head SET seq = 0, hash = repeat('0', 64)`);
    const emptied = await verify();
    expect(emptied.code).toBe(1);
    expect(emptied.stderr).toContain('entries 1–4 are missing');
  });
});
