import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { type RelayStore, SyncError } from '@scopesync/core';
import type { AuditAnchorPoint } from './audit-log.ts';
import type { RelayLog } from './relay-log.ts';

/** The audit key's file name in a data dir (or `--audit-dir`). */
export const AUDIT_KEY_FILE = 'audit.key';
/** The audit anchor's file name in a data dir (or `--audit-dir`). */
export const AUDIT_ANCHOR_FILE = 'audit-anchor.json';

/** An anchor as written: the point, when, and an HMAC over both under the audit key. */
export interface AuditAnchor extends AuditAnchorPoint {
  /** Epoch milliseconds. */
  readonly writtenAt: number;
}

const KEY_BYTES = 32;

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

/**
 * Reads the audit key (64 hex characters) from `path`, or null when there is no such file.
 * Throws SyncError('Internal') for a file that is not a key.
 */
export function readAuditKey(path: string): Uint8Array | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (error) {
    if (isMissing(error)) return null;
    throw error;
  }
  if (!/^[0-9a-f]{64}$/.test(text))
    throw new SyncError('Internal', `${path} is not an audit key (64 hex characters)`);
  return Buffer.from(text, 'hex');
}

/**
 * The audit key at `path`, created (32 random bytes, mode 0600) when there is none. `warn` is
 * told when an existing key file is readable by others than its owner.
 */
export function loadOrCreateAuditKey(path: string, warn: (message: string) => void): Uint8Array {
  const existing = readAuditKey(path);
  if (existing !== null) {
    if ((statSync(path).mode & 0o077) !== 0)
      warn(`the audit key ${path} is readable by others: chmod 600 it`);
    return existing;
  }
  mkdirSync(dirname(path), { recursive: true });
  const key = randomBytes(KEY_BYTES);
  try {
    writeFileSync(path, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    // Another relay on the same file created it first: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateAuditKey(path, warn);
    throw error;
  }
  return key;
}

function anchorMac(anchor: AuditAnchor, key: Uint8Array): string {
  const fields = ['scopesync-audit-anchor', 1, anchor.seq, anchor.hash, anchor.keyedFrom, anchor.writtenAt];
  return createHmac('sha256', key).update(JSON.stringify(fields)).digest('hex');
}

/**
 * Reads the anchor at `path`; null when there is none. Throws SyncError('Internal') when it
 * is malformed or its HMAC does not verify with `key` (forged, or another relay's key).
 */
export function readAuditAnchor(path: string, key: Uint8Array): AuditAnchor | null {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (error) {
    if (isMissing(error)) return null;
    throw error;
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    throw new SyncError('Internal', `the audit anchor ${path} is not JSON`);
  }
  const { v, seq, hash, keyedFrom, writtenAt, mac } = parsed;
  if (
    v !== 1 ||
    !Number.isSafeInteger(seq) ||
    typeof hash !== 'string' ||
    !Number.isSafeInteger(keyedFrom) ||
    !Number.isSafeInteger(writtenAt) ||
    typeof mac !== 'string'
  ) {
    throw new SyncError('Internal', `the audit anchor ${path} is malformed`);
  }
  const anchor: AuditAnchor = {
    seq: seq as number,
    hash,
    keyedFrom: keyedFrom as number,
    writtenAt: writtenAt as number,
  };
  const expected = Buffer.from(anchorMac(anchor, key), 'hex');
  const given = Buffer.from(mac, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new SyncError('Internal', `the audit anchor ${path} does not verify with the audit key`);
  }
  return anchor;
}

/** Writes `anchor` to `path` atomically (a temporary file renamed over it), mode 0600. */
export function writeAuditAnchor(path: string, anchor: AuditAnchor, key: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const body = { v: 1, ...anchor, mac: anchorMac(anchor, key) };
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(body)}\n`, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

/** Options of an {@link AuditAnchorKeeper}. */
export interface AuditAnchorKeeperOptions {
  readonly store: RelayStore;
  readonly key: Uint8Array;
  readonly file: string;
  /** How often the head is anchored while the relay runs, in ms. */
  readonly intervalMs: number;
  readonly log: RelayLog;
  /** Epoch milliseconds. */
  readonly now?: () => number;
}

/**
 * Keeps the audit log's head anchored outside the database: at start, every `intervalMs`,
 * and at close. The anchor only moves forward; if the log is found behind its anchor (entries
 * were deleted), the keeper reports it and leaves the anchor as evidence.
 */
export class AuditAnchorKeeper {
  readonly #options: AuditAnchorKeeperOptions;
  readonly #now: () => number;
  #anchor: AuditAnchor | null = null;
  #keyedFrom = 1;
  #frozen = false;
  #timer: NodeJS.Timeout | null = null;
  #started = false;
  #writing: Promise<void> = Promise.resolve();

  constructor(options: AuditAnchorKeeperOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Reads the anchor (or starts one: the log is keyed from its next entry on) and starts the timer. */
  async start(): Promise<void> {
    const { store, key, file, intervalMs } = this.#options;
    this.#anchor = readAuditAnchor(file, key);
    const head = await store.auditHead();
    this.#keyedFrom = this.#anchor?.keyedFrom ?? (head?.seq ?? 0) + 1;
    this.#started = true;
    await this.anchor();
    this.#timer = setInterval(() => void this.anchor(), intervalMs);
    this.#timer.unref();
  }

  /**
   * Anchors the current head (once the previous write finished), unless the log no longer
   * holds the entry anchored before: then it was truncated or rewritten, and the old anchor
   * stays as evidence. Never rejects: failures are logged.
   */
  anchor(): Promise<void> {
    this.#writing = this.#writing.then(async () => {
      if (this.#frozen) return;
      try {
        const { store, file, key, log } = this.#options;
        const head = await store.auditHead();
        const seq = head?.seq ?? 0;
        const hash = head?.hash ?? '';
        const previous = this.#anchor;
        if (previous !== null) {
          if (seq === previous.seq && hash === previous.hash) return; // nothing new
          if (!(await this.#holds(previous))) {
            this.#frozen = true;
            log('error', 'the audit log no longer holds its anchored entry: run audit verify', {
              anchoredSeq: previous.seq,
              headSeq: seq,
              anchorFile: file,
            });
            return;
          }
        }
        const next: AuditAnchor = { seq, hash, keyedFrom: this.#keyedFrom, writtenAt: this.#now() };
        writeAuditAnchor(file, next, key);
        this.#anchor = next;
      } catch (error) {
        this.#options.log('error', 'writing the audit anchor failed', {
          anchorFile: this.#options.file,
          error,
        });
      }
    });
    return this.#writing;
  }

  async #holds(anchor: AuditAnchor): Promise<boolean> {
    if (anchor.seq === 0) return true;
    const [entry] = await this.#options.store.queryAudit({ afterSeq: anchor.seq - 1, limit: 1 });
    return entry?.seq === anchor.seq && entry.hash === anchor.hash;
  }

  /** Stops the timer and anchors the head one last time (if it was started). Idempotent. */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#started) await this.anchor();
  }
}
