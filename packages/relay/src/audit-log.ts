import { createHash, createHmac } from 'node:crypto';
import type { AuditHead, AuditQuery, AuditRecord, RelayStore, RelayStoreTx } from '@scopesync/core';

/** The `prevHash` of the first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * What starts the hash of an entry sealed with the audit key (an HMAC-SHA256); an entry whose
 * hash lacks it is an unkeyed one (a plain SHA-256) from before the relay had a key.
 */
export const KEYED_HASH_PREFIX = 'hmac:';

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
 * The hash of an entry over every field but `hash` itself, `prevHash` included, as a JSON
 * array (fixed order, unambiguous escaping). Changing any field changes it. With the audit
 * `key` it is an HMAC-SHA256 (prefixed {@link KEYED_HASH_PREFIX}), which nobody without the
 * key can recompute; without, a plain SHA-256 (logs from before the relay had a key).
 */
export function hashAuditEntry(entry: Omit<AuditRecord, 'hash'>, key?: Uint8Array): string {
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
  const text = JSON.stringify(fields);
  if (key !== undefined) return KEYED_HASH_PREFIX + createHmac('sha256', key).update(text).digest('hex');
  return createHash('sha256').update(text).digest('hex');
}

/** Builds the entry that follows `head` (null: the first entry) for `event` at time `ts`, keyed when a key is given. */
export function sealAuditEntry(
  head: AuditHead | null,
  event: AuditEvent,
  ts: number,
  key?: Uint8Array,
): AuditRecord {
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
  return { ...unsealed, hash: hashAuditEntry(unsealed, key) };
}

/** The outcome of {@link verifyAuditChain}. */
export type AuditVerification =
  | {
      readonly ok: true;
      readonly entries: number;
      /** The last entry of the unkeyed part at the start of the log (0: none is unkeyed). */
      readonly unkeyedThrough: number;
      /** The anchored seq the log was checked against, or null when no anchor was given. */
      readonly anchoredSeq: number | null;
    }
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

/** What the log must contain, as recorded outside the database (see `audit-anchor.ts`). */
export interface AuditAnchorPoint {
  /** The anchored entry: the log must hold it, with this hash. */
  readonly seq: number;
  readonly hash: string;
  /** From this seq on every entry must be keyed (the relay had its key then). */
  readonly keyedFrom: number;
}

/** Options of {@link verifyAuditChain}. */
export interface AuditVerifyOptions {
  /** The audit key: keyed entries are checked with it, and unkeyed ones after a keyed one are refused. */
  readonly key?: Uint8Array | undefined;
  /** The anchor to check the log against. */
  readonly anchor?: AuditAnchorPoint | null | undefined;
}

/** Entries read per page while verifying. */
const VERIFY_PAGE = 1000;

/**
 * Walks the whole audit log and checks the chain: every seq present in order, every entry
 * hashing to its stored hash and pointing at its predecessor's, and the recorded head
 * matching the last entry. With the key: keyed entries carry the right HMAC, and once the log
 * is keyed (a keyed entry was seen, or the anchor's `keyedFrom` is reached) no entry is
 * unkeyed. With an anchor: the log reaches the anchored seq and holds the anchored hash there,
 * so deleting the newest entries, recomputing the chain or emptying the log is detected.
 * Reports the first entry that was edited, deleted or inserted.
 */
export async function verifyAuditChain(
  store: RelayStore,
  options: AuditVerifyOptions = {},
): Promise<AuditVerification> {
  const { key, anchor } = options;
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let checked = 0;
  let unkeyedThrough = 0;
  let keyed = false;
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
      if (entry.hash.startsWith(KEYED_HASH_PREFIX)) {
        if (key === undefined)
          return broken(`entry ${entry.seq} is keyed: verify with the audit key (--audit-key-file)`);
        if (hashAuditEntry(entry, key) !== entry.hash)
          return broken(`entry ${entry.seq} was edited or forged (its HMAC does not match the audit key)`);
        keyed = true;
      } else {
        if (key !== undefined && (keyed || (anchor != null && entry.seq >= anchor.keyedFrom)))
          return broken(
            `entry ${entry.seq} is not keyed though the log is keyed from entry ${anchor?.keyedFrom ?? '…'} (recomputed without the key)`,
          );
        if (hashAuditEntry(entry) !== entry.hash)
          return broken(`entry ${entry.seq} was edited (its hash does not match)`);
        unkeyedThrough = entry.seq;
      }
      if (anchor != null && entry.seq === anchor.seq && entry.hash !== anchor.hash)
        return broken(`entry ${entry.seq} is not the entry the anchor recorded (the chain was rewritten)`);
      prevHash = entry.hash;
      expectedSeq += 1;
      checked += 1;
    }
    if (page.length < VERIFY_PAGE) break;
  }
  const lastSeq = expectedSeq - 1;
  if (anchor != null && lastSeq < anchor.seq) {
    return {
      ok: false,
      entries: checked,
      seq: lastSeq + 1,
      id: null,
      problem: `entries ${lastSeq + 1}–${anchor.seq} are missing: the anchor outside the database records entry ${anchor.seq}`,
    };
  }
  const head = await store.auditHead();
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
  return { ok: true, entries: checked, unkeyedThrough, anchoredSeq: anchor?.seq ?? null };
}

/** Options of {@link AuditLog}. */
export interface AuditLogOptions {
  readonly store: RelayStore;
  /** The audit key: entries are sealed with an HMAC under it (docs/security.md, "Audit chain"). */
  readonly key?: Uint8Array | undefined;
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
  readonly #key: Uint8Array | undefined;

  constructor(options: AuditLogOptions) {
    this.#store = options.store;
    this.#now = options.now ?? Date.now;
    this.#key = options.key;
  }

  /**
   * Appends one entry and resolves with it once it is durable; through `tx` (a store
   * transaction's), it commits or rolls back with the rest of that transaction.
   */
  record(event: AuditEvent, tx: Pick<RelayStoreTx, 'appendAudit'> = this.#store): Promise<AuditRecord> {
    const ts = this.#now();
    return tx.appendAudit((head) => sealAuditEntry(head, event, ts, this.#key));
  }

  /** Entries matching `query`, oldest first. */
  query(query: AuditQuery): Promise<AuditRecord[]> {
    return this.#store.queryAudit(query);
  }

  /** Verifies the whole chain (see {@link verifyAuditChain}), with this log's key. */
  verify(anchor?: AuditAnchorPoint | null): Promise<AuditVerification> {
    return verifyAuditChain(this.#store, { key: this.#key, anchor });
  }
}
