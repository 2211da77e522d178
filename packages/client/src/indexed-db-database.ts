import { SyncError } from '@scopesync/core';
import { Dexie, type Table } from 'dexie';
import { BatchedReads } from './indexed-db-batched-reads.ts';

/** One stored log entry: a document's update (or envelope) under its sequence number. */
export interface EntryRow {
  readonly doc: string;
  readonly seq: number;
  readonly data: Uint8Array;
}

/** The highest sequence number ever assigned in a document; kept after removal so seqs are never reused. */
export interface HeadRow {
  readonly doc: string;
  readonly seq: number;
}

/** One key-value record. */
export interface KvRow {
  readonly table: string;
  readonly key: string;
  readonly value: unknown;
}

/** Where and how to open the IndexedDB database. */
export interface IndexedDbOptions {
  /** Database name. Default `scopesync`. Use one name per relay and user when an app talks to several. */
  readonly name?: string;
  /** The IndexedDB factory. Default: the global `indexedDB` (pass fake-indexeddb's in Node). */
  readonly indexedDB?: IDBFactory;
  /** The matching key range class. Default: the global `IDBKeyRange`. */
  readonly IDBKeyRange?: typeof IDBKeyRange;
}

/** The default database name. */
export const DEFAULT_DATABASE_NAME = 'scopesync';

/**
 * The client's single IndexedDB database (Dexie): document logs (`entries`, `heads`) and
 * key-value records (`kv`). One database, so that one IndexedDB transaction can span a
 * document's log and its records when a caller needs that.
 */
export class ScopesyncDatabase {
  /** The Dexie instance. */
  readonly dexie: Dexie;
  /** Log entries keyed by [doc, seq]. */
  readonly entries: Table<EntryRow, [string, number]>;
  /** Per-document head sequence numbers. */
  readonly heads: Table<HeadRow, string>;
  /** Key-value records keyed by [table, key]. */
  readonly kv: Table<KvRow, [string, string]>;
  /** Reads that share one read-only transaction with the reads of other callers. */
  readonly reads: BatchedReads;
  /** The key range class of the IndexedDB in use. */
  readonly keyRange: typeof IDBKeyRange;
  #users = 0;
  #closed = false;

  constructor(options: IndexedDbOptions = {}) {
    const factory = options.indexedDB ?? globalThis.indexedDB;
    const keyRange = options.IDBKeyRange ?? globalThis.IDBKeyRange;
    if (!factory || !keyRange) {
      throw new TypeError(
        'IndexedDB is not available: pass { indexedDB, IDBKeyRange } (fake-indexeddb in Node)',
      );
    }
    this.dexie = new Dexie(options.name ?? DEFAULT_DATABASE_NAME, {
      indexedDB: factory,
      IDBKeyRange: keyRange,
      // Chrome's default "relaxed" durability may report a commit before it reaches disk;
      // a write that resolves must survive a crash (the y-indexeddb #28 failure).
      chromeTransactionDurability: 'strict',
      cache: 'disabled',
    });
    this.dexie.version(1).stores({
      entries: '[doc+seq], doc',
      heads: 'doc',
      kv: '[table+key], table',
    });
    this.entries = this.dexie.table('entries');
    this.heads = this.dexie.table('heads');
    this.kv = this.dexie.table('kv');
    this.keyRange = keyRange;
    this.reads = new BatchedReads(async () => {
      if (this.#closed) throw new SyncError('Unavailable', 'the database is closed');
      if (!this.dexie.isOpen()) await this.dexie.open();
      return this.dexie.backendDB();
    });
  }

  /** Registers one more store using this database; {@link release} closes it after the last. */
  acquire(): this {
    this.#users++;
    return this;
  }

  /** Unregisters a store; the database closes once no store uses it. Idempotent per store by contract of the caller. */
  release(): void {
    this.#users = Math.max(0, this.#users - 1);
    if (this.#users === 0 && !this.#closed) {
      this.#closed = true;
      this.dexie.close();
    }
  }
}
