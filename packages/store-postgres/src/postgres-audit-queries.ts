/** The PostgreSQL relay store's audit chain and mod grants. */

import { type AuditHead, type AuditQuery, type AuditRecord, type ModGrant, SyncError } from '@scopesync/core';
import { toSafeInteger } from './postgres-pool.ts';
import { type AuditRow, type GrantRow, toAudit, toGrant } from './postgres-relay-rows.ts';
import { PostgresSharingQueries } from './postgres-sharing-queries.ts';

/** Most entries one audit query returns. */
const MAX_AUDIT_PAGE = 10_000;

/** The RelayStore methods of the audit chain and of mod grants. */
export abstract class PostgresAuditQueries extends PostgresSharingQueries {
  async appendAudit(seal: (head: AuditHead | null) => AuditRecord): Promise<AuditRecord> {
    const outcome = await this.x.atomic('append to the audit log', async (q) => {
      // The head row is locked until this transaction (the audited one, inside `transaction`)
      // commits: appenders on every relay chain one after another.
      const locked = (await q.query<{ seq: bigint; hash: string }>(this.sql.lockAuditHead)).rows[0];
      if (!locked) throw new SyncError('Internal', 'the audit head row is missing');
      const seq = toSafeInteger(locked.seq, 'audit seq');
      const head = seq === 0 ? null : { seq, hash: locked.hash };
      let entry: AuditRecord;
      try {
        entry = { ...seal(head) };
      } catch (error) {
        // The caller's own error, to pass on unchanged: returned rather than thrown so that
        // neither the retry nor the error mapping around this step sees it. Nothing is written.
        return { refused: error };
      }
      if (entry.seq !== seq + 1) {
        throw new SyncError('Conflict', `audit entry ${entry.seq} does not follow ${seq}`);
      }
      if (entry.prevHash !== locked.hash) {
        throw new SyncError(
          'Conflict',
          `audit entry ${entry.seq} does not chain to the hash of entry ${seq}`,
        );
      }
      await q.query(this.sql.insertAudit, [
        entry.seq,
        entry.id,
        entry.ts,
        entry.accessor,
        entry.target,
        entry.scope,
        entry.key,
        entry.action,
        entry.result,
        entry.channel,
        entry.reason,
        entry.prevHash,
        entry.hash,
      ]);
      await q.query(this.sql.setAuditHead, [entry.seq, entry.hash]);
      return { entry };
    });
    if ('refused' in outcome) throw outcome.refused;
    return outcome.entry;
  }

  async auditHead(): Promise<AuditHead | null> {
    const rows = await this.x.one(
      'read the audit head',
      async (q) => (await q.query<{ seq: bigint; hash: string }>(this.sql.auditHead)).rows,
    );
    const seq = toSafeInteger(rows[0]?.seq ?? 0, 'audit seq');
    return seq === 0 || !rows[0] ? null : { seq, hash: rows[0].hash };
  }

  async queryAudit(query: AuditQuery): Promise<AuditRecord[]> {
    const limit = Math.min(Math.max(0, Math.floor(query.limit ?? MAX_AUDIT_PAGE)), MAX_AUDIT_PAGE);
    const after = Math.max(0, Math.floor(query.afterSeq ?? 0));
    const since = Math.max(Number.MIN_SAFE_INTEGER, Math.ceil(query.since ?? Number.MIN_SAFE_INTEGER));
    const rows = await this.x.one('query the audit log', async (q) => {
      return query.target === undefined
        ? (await q.query<AuditRow>(this.sql.auditAll, [after, since, limit])).rows
        : (await q.query<AuditRow>(this.sql.auditByTarget, [after, since, limit, query.target])).rows;
    });
    return rows.map(toAudit);
  }

  async replaceGrants(source: string, grants: readonly ModGrant[]): Promise<void> {
    if (grants.some((g) => g.source !== source)) {
      throw new SyncError('BadRequest', `every grant must have source ${source}`);
    }
    const values = [
      source,
      grants.map((g) => g.target),
      grants.map((g) => g.permission),
      grants.map((g) => (g.keys ? JSON.stringify(g.keys) : null)),
      grants.map((g) => g.expiresAt ?? null),
    ];
    await this.x.atomic('replace the grants', async (q) => {
      await q.query(this.sql.deleteGrants, [source]);
      if (grants.length > 0) await q.query(this.sql.insertGrants, values);
    });
  }

  async listGrants(source?: string): Promise<ModGrant[]> {
    const rows = await this.x.one('list the grants', async (q) => {
      return source === undefined
        ? (await q.query<GrantRow>(this.sql.allGrants)).rows
        : (await q.query<GrantRow>(this.sql.grantsOf, [source])).rows;
    });
    return rows.map(toGrant);
  }
}
