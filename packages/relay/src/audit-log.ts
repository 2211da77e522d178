import { createHash } from 'node:crypto';
import type { AuditHead, AuditQuery, AuditRecord, RelayStore } from '@scopesync/core';

/** The `prevHash` of the first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/** What happened, before the log gives it a place in the chain (its id, time, seq and hashes). */
export type AuditEvent = Pick<
  AuditRecord,
  'accessor' | 'target' | 'scope' | 'key' | 'action' | 'result' | 'channel' | 'reason'
>;

/** The entry name the seed specifies: `AUDIT::<requesting_user_id>::<target_user_id>::<timestamp>`. */
export function auditId(accessor: string, target: string, ts: number): string {
  return `AUDIT::${accessor}::${target}::${ts}`;
}

/**
 * The hash of an entry: SHA-256 over every field but `hash` itself, `prevHash` included, as
 * a JSON array (fixed order, unambiguous escaping). Changing any field changes it.
 */
export function hashAuditEntry(entry: Omit<AuditRecord, 'hash'>): string {
  const fields = [
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
  ];
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

/** Builds the entry that follows `head` (null: the first entry) for `event` at time `ts`. */
export function sealAuditEntry(head: AuditHead | null, event: AuditEvent, ts: number): AuditRecord {
  const unsealed = {
    seq: (head?.seq ?? 0) + 1,
    id: auditId(event.accessor, event.target, ts),
    ts,
    accessor: event.accessor,
    target: event.target,
    scope: event.scope,
    key: event.key,
    action: event.action,
    result: event.result,
    channel: event.channel,
    reason: event.reason,
    prevHash: head?.hash ?? GENESIS_HASH,
  };
  return { ...unsealed, hash: hashAuditEntry(unsealed) };
}

/** The outcome of {@link verifyAuditChain}. */
export type AuditVerification =
  | { readonly ok: true; readonly entries: number }
  | {
      readonly ok: false;
      /** Entries that checked out before the break. */
      readonly entries: number;
      /** The seq of the first entry that is missing, edited or out of the chain. */
      readonly seq: number;
      /** Its id, when the entry is there. */
      readonly id: string | null;
      /** What is wrong, in words. */
      readonly problem: string;
    };

/** Entries read per page while verifying. */
const VERIFY_PAGE = 1000;

/**
 * Walks the whole audit log and checks the chain: every seq present in order, every entry
 * hashing to its stored hash and pointing at its predecessor's, and the recorded head
 * matching the last entry. Reports the first entry that was edited, deleted or inserted.
 */
export async function verifyAuditChain(store: RelayStore): Promise<AuditVerification> {
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let checked = 0;
  for (;;) {
    const page = await store.queryAudit({ afterSeq: expectedSeq - 1, limit: VERIFY_PAGE });
    for (const entry of page) {
      const broken = (problem: string): AuditVerification => ({
        ok: false,
        entries: checked,
        seq: entry.seq,
        id: entry.id,
        problem,
      });
      if (entry.seq !== expectedSeq) {
        return {
          ok: false,
          entries: checked,
          seq: expectedSeq,
          id: null,
          problem: `entry ${expectedSeq} is missing (the next one is ${entry.seq})`,
        };
      }
      if (entry.prevHash !== prevHash)
        return broken(`entry ${entry.seq} does not chain to entry ${entry.seq - 1}`);
      if (hashAuditEntry(entry) !== entry.hash)
        return broken(`entry ${entry.seq} was edited (its hash does not match)`);
      prevHash = entry.hash;
      expectedSeq += 1;
      checked += 1;
    }
    if (page.length < VERIFY_PAGE) break;
  }
  const head = await store.auditHead();
  const lastSeq = expectedSeq - 1;
  if ((head?.seq ?? 0) !== lastSeq || (head !== null && head.hash !== prevHash)) {
    const headSeq = head?.seq ?? 0;
    return {
      ok: false,
      entries: checked,
      seq: headSeq > lastSeq ? lastSeq + 1 : headSeq,
      id: null,
      problem:
        headSeq > lastSeq
          ? `entries ${lastSeq + 1}–${headSeq} are missing from the end of the log`
          : `the log's head (entry ${headSeq}) does not match its last entry ${lastSeq}`,
    };
  }
  return { ok: true, entries: checked };
}

/** Options of {@link AuditLog}. */
export interface AuditLogOptions {
  readonly store: RelayStore;
  /** Epoch milliseconds; injectable for tests. */
  readonly now?: () => number;
}

/**
 * The relay's audit log: appends hash-chained entries to the {@link RelayStore} (each holds
 * the hash of the previous one, so an edit or gap is detectable) and answers queries.
 */
export class AuditLog {
  readonly #store: RelayStore;
  readonly #now: () => number;

  constructor(options: AuditLogOptions) {
    this.#store = options.store;
    this.#now = options.now ?? Date.now;
  }

  /** Appends one entry and resolves with it once it is durable. */
  record(event: AuditEvent): Promise<AuditRecord> {
    const ts = this.#now();
    return this.#store.appendAudit((head) => sealAuditEntry(head, event, ts));
  }

  /** Entries matching `query`, oldest first. */
  query(query: AuditQuery): Promise<AuditRecord[]> {
    return this.#store.queryAudit(query);
  }

  /** Verifies the whole chain (see {@link verifyAuditChain}). */
  verify(): Promise<AuditVerification> {
    return verifyAuditChain(this.#store);
  }
}
