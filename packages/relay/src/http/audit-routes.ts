import { type AuditRecord, Level, SyncError } from '@scopesync/core';
import { intParam } from './request.ts';
import { sendJson } from './respond.ts';
import type { Route, RouteRequest, RouteServices } from './route.ts';

/** Entries one page returns at most. */
const MAX_AUDIT_LIMIT = 1000;

/** An audit entry as the HTTP API shows it. */
export function auditEntryBody(e: AuditRecord): Record<string, unknown> {
  return {
    id: e.id,
    seq: e.seq,
    timestamp: e.ts,
    accessor: e.accessor,
    target: e.target,
    scope: e.scope,
    key: e.key,
    action: e.action,
    result: e.result,
    channel: e.channel,
    reason: e.reason,
    prev_hash: e.prevHash,
    hash: e.hash,
  };
}

/**
 * `GET /audit?target=&since=&limit=&after=`: a user reads the entries about their own data
 * (target defaults to themselves); an admin reads anyone's, or all without a target.
 * `since` is epoch milliseconds; `after` is the `seq` cursor the previous page returned.
 */
export function auditRoutes(s: RouteServices): Route[] {
  const query = async (r: RouteRequest): Promise<void> => {
    const caller = await r.user();
    const rawTarget = r.query.get('target');
    const target = rawTarget === null || rawTarget === '' ? undefined : rawTarget;
    if (target !== undefined && target.length > 128) throw new SyncError('BadRequest', 'target is too long');
    const since = intParam(r.query, 'since', 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(r.query, 'limit', 1, MAX_AUDIT_LIMIT, 100);
    const after = intParam(r.query, 'after', 0, Number.MAX_SAFE_INTEGER);
    const isAdmin = caller.level >= Level.Admin;
    if (!isAdmin && target !== undefined && target !== caller.userId) {
      throw new SyncError('Forbidden', 'you can read the audit entries about your own data only');
    }
    const entries = await s.audit.query({
      target: isAdmin ? target : caller.userId,
      since,
      afterSeq: after,
      limit: limit + 1,
    });
    const page = entries.slice(0, limit);
    const more = entries.length > limit;
    sendJson(r.res, 200, {
      entries: page.map(auditEntryBody),
      next: more ? (page[page.length - 1]?.seq ?? null) : null,
    });
  };

  return [{ pattern: ['audit'], methods: { GET: query } }];
}
