import { call } from '../support/http-client.ts';

/** One entry of the relay's audit log, as `GET /audit` answers it. */
export type AuditEntry = Record<string, unknown>;

/**
 * Calls `visit` for every entry of the audit log of the relay at `relayUrl`, page by page, read
 * with `key` (an admin's, or an owner's for their own objects). Resolves with a description of
 * the failure when a page cannot be read, so a checker reports it as a violation instead of
 * silently checking less.
 */
export async function forEachAuditEntry(
  relayUrl: string,
  key: string,
  visit: (entry: AuditEntry) => void,
): Promise<string | undefined> {
  let after: number | null = 0;
  while (after !== null) {
    const page = await call(relayUrl, 'GET', `/audit?limit=1000&after=${after}`, { key });
    if (page.status !== 200) return `reading the audit log answered ${page.status}`;
    for (const entry of page.json.entries as AuditEntry[]) visit(entry);
    after = typeof page.json.next === 'number' ? page.json.next : null;
  }
  return undefined;
}
