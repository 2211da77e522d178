import type { HttpApi } from './http-api.ts';

/** One entry of the relay's tamper-evident audit log, as the relay shows it. */
export interface AuditEntry {
  readonly id: string;
  /** Position in the log; pass the last one as `after` to page on. */
  readonly seq: number;
  /** Epoch milliseconds. */
  readonly timestamp: number;
  /** Who acted: a user id, `guest`, `runtime` or `mod:<name>`. */
  readonly accessor: string;
  /** Whose data it was. */
  readonly target: string;
  readonly scope: string;
  readonly key: string;
  readonly action: 'read' | 'write' | 'delete' | 'list' | 'share';
  readonly result: 'ok' | 'denied';
  readonly channel: 'http' | 'ws';
  readonly reason?: string;
  /** The hash of the previous entry and of this one: the chain that makes edits detectable. */
  readonly prev_hash: string;
  readonly hash: string;
}

/** What to read from the audit log. */
export interface AuditQuery {
  /** Only entries at or after this time (epoch milliseconds). */
  readonly since?: number;
  /** Entries after this `seq` (the `next` of the previous page). */
  readonly after?: number;
  /** Most entries in this page (the relay caps it). */
  readonly limit?: number;
  /** Whose data: admins may name anyone; everyone else reads only their own. */
  readonly target?: string;
}

/** A page of audit entries, oldest first, and the cursor of the next page (null on the last). */
export interface AuditPage {
  readonly entries: readonly AuditEntry[];
  readonly next: number | null;
}

/**
 * Reads the relay's audit log ("who read my profile"): by default the entries about the
 * caller's own data. Needs the relay: it rejects with Unavailable offline.
 */
export async function readAudit(http: HttpApi, query: AuditQuery = {}): Promise<AuditPage> {
  const params = new URLSearchParams();
  if (query.since !== undefined) params.set('since', String(query.since));
  if (query.after !== undefined) params.set('after', String(query.after));
  if (query.limit !== undefined) params.set('limit', String(query.limit));
  if (query.target !== undefined) params.set('target', query.target);
  const search = params.toString();
  const answer = await http.json<{ entries?: AuditEntry[]; next?: number | null }>({
    method: 'GET',
    path: `/audit${search ? `?${search}` : ''}`,
  });
  return { entries: answer.entries ?? [], next: typeof answer.next === 'number' ? answer.next : null };
}
