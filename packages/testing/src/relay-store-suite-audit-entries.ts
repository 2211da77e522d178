import type { AuditChannel, AuditHead, AuditRecord, RelayStore } from '@scopesync/core';
import { expect } from 'vitest';

// Audit entries as the relay store suite writes them, and the check that a store's log is one
// unbroken chain. The store only keeps the chain; sealing an entry is its caller's job.

/** The `prevHash` of the first audit entry. */
export const GENESIS_HASH = '0'.repeat(64);

/** What one audited access was, before the log gives it a place. */
export interface AuditEvent {
  readonly accessor: string;
  readonly target: string;
  readonly action?: string;
  readonly channel?: AuditChannel;
}

/**
 * The entry that follows `head`. The store treats hashes as opaque, so a stand-in digest does
 * (the relay's real one needs node:crypto, which this package does without); it still differs
 * per entry and covers `prevHash`, so a chain that skipped an entry would not check out.
 */
export function sealEntry(head: AuditHead | null, event: AuditEvent, ts: number): AuditRecord {
  const unsealed = {
    seq: (head?.seq ?? 0) + 1,
    id: `AUDIT::${event.accessor}::${event.target}::${ts}`,
    ts,
    accessor: event.accessor,
    target: event.target,
    scope: 'USER_PUBLIC',
    key: 'profile',
    action: event.action ?? 'read',
    result: 'ok' as const,
    channel: event.channel ?? 'http',
    reason: 'USER_PUBLIC is readable by everyone',
    prevHash: head?.hash ?? GENESIS_HASH,
  };
  return { ...unsealed, hash: standInHash(JSON.stringify(unsealed)) };
}

/** 64 hex characters from FNV-1a over the text, four times with different offsets. */
function standInHash(text: string): string {
  let out = '';
  for (let round = 0; round < 4; round++) {
    let h = (0x811c9dc5 ^ round) >>> 0;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
    out += h.toString(16).padStart(8, '0').repeat(2);
  }
  return out;
}

/** The whole audit log, checked to be one unbroken chain ending at the recorded head. */
export async function auditChain(store: RelayStore): Promise<AuditRecord[]> {
  const entries = await store.queryAudit({});
  entries.forEach((entry, i) => {
    expect(entry.seq).toBe(i + 1);
    expect(entry.prevHash).toBe(i === 0 ? GENESIS_HASH : entries[i - 1]?.hash);
  });
  const last = entries.at(-1);
  expect(await store.auditHead()).toEqual(last ? { seq: last.seq, hash: last.hash } : null);
  return entries;
}
