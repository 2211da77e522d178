/** The SQLite relay store's audit chain and mod grants. */

import { type AuditHead, type AuditQuery, type AuditRecord, type ModGrant, SyncError } from '@scopesync/core';
import type Database from 'better-sqlite3';
import { type GrantSql, toGrant } from './sqlite-relay-rows.ts';
import { GENESIS_HASH } from './sqlite-relay-schema.ts';
import { SqliteSharingQueries } from './sqlite-sharing-queries.ts';

/** Most entries one audit query returns. */
const MAX_AUDIT_PAGE = 10_000;

/** The audit columns under the record's field names: a row read with them is an AuditRecord. */
const AUDIT_COLUMNS =
  'seq, id, ts, accessor, target, scope, key, action, result, channel, reason, prev_hash AS prevHash, hash';

/**
 * The statements of the audit chain and mod grants. Run once per store: better-sqlite3 caches
 * nothing by itself.
 */
function prepare(db: Database.Database) {
  return {
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
 * The changes of the audit chain and mod grants that take several statements: one better-sqlite3
 * transaction each.
 */
function transactions(db: Database.Database, sql: Statements) {
  return {
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

/** The RelayStoreTx methods of the audit chain and of mod grants. */
export abstract class SqliteAuditQueries extends SqliteSharingQueries {
  readonly #sql = prepare(this.handle.db);
  readonly #tx = transactions(this.handle.db, this.#sql);

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
      return this.run('append to the audit log', () => ({ ...this.#tx.appendAudit(guarded) }));
    } catch (error) {
      throw sealFailure ? sealFailure.error : error;
    }
  }

  async auditHead(): Promise<AuditHead | null> {
    return this.run('read the audit head', () => this.#sql.auditHead.get() ?? null);
  }

  async queryAudit(query: AuditQuery): Promise<AuditRecord[]> {
    return this.run('query the audit log', () => {
      const limit = Math.min(Math.max(0, Math.floor(query.limit ?? MAX_AUDIT_PAGE)), MAX_AUDIT_PAGE);
      const after = query.afterSeq ?? 0;
      const since = query.since ?? Number.MIN_SAFE_INTEGER;
      return query.target === undefined
        ? this.#sql.auditAll.all(after, since, limit)
        : this.#sql.auditByTarget.all(query.target, after, since, limit);
    });
  }

  async replaceGrants(source: string, grants: readonly ModGrant[]): Promise<void> {
    this.run('replace the grants of', () => {
      if (grants.some((g) => g.source !== source))
        throw new SyncError('BadRequest', `every grant must have source ${source}`);
      this.#tx.replaceGrants(source, grants);
    });
  }

  async listGrants(source?: string): Promise<ModGrant[]> {
    return this.run('list the grants', () =>
      (source === undefined ? this.#sql.allGrants.all() : this.#sql.grantsOf.all(source)).map(toGrant),
    );
  }
}
