import { SyncError } from '@scopesync/core';
import { Dexie, type Table } from 'dexie';
import { BatchedReads } from './indexed-db-batched-reads.ts';
import type { EntryRow } from './indexed-db-entry-packs.ts';
import { openReadConnection } from './indexed-db-read-connection.ts';

export type { EntryRow } from './indexed-db-entry-packs.ts';

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
 * The client's single IndexedDB database: document logs (`entries`, `heads`) and key-value
 * records (`kv`). One database, so that one IndexedDB transaction can span a document's log and
 * its records when a caller needs that. Writes go through Dexie, created and opened on first
 * use; the batched {@link reads} go through a plain IndexedDB connection to the same database
 * when it already exists, so a page load that only reads never pays for Dexie's set-up.
 */
export class ScopesyncDatabase {
  /** Reads that share one read-only transaction with the reads of other callers. */
  readonly reads: BatchedReads;
  /** The key range class of the IndexedDB in use. */
  readonly keyRange: typeof IDBKeyRange;
  readonly #name: string;
  readonly #factory: IDBFactory;
  #dexie: Dexie | null = null;
  /** The plain read connection once asked for: resolves null when the database needed Dexie's open. Null before, and after it was dropped. */
  #native: Promise<IDBDatabase | null> | null = null;
  #nativeDb: IDBDatabase | null = null;
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
    this.#name = options.name ?? DEFAULT_DATABASE_NAME;
    this.#factory = factory;
    this.keyRange = keyRange;
    this.reads = new BatchedReads(() => this.#readDatabase(), {
      store: 'entries',
      order: 'heads',
      keyRange,
    });
  }

  /** The Dexie instance (created on first use; it opens itself on its first operation). */
  get dexie(): Dexie {
    if (this.#dexie) return this.#dexie;
    const dexie = new Dexie(this.#name, {
      indexedDB: this.#factory,
      IDBKeyRange: this.keyRange,
      // Chrome's default "relaxed" durability may report a commit before it reaches disk;
      // a write that resolves must survive a crash (the y-indexeddb #28 failure).
      chromeTransactionDurability: 'strict',
      cache: 'disabled',
    });
    // Keep in step with READ_STORES, which the plain read connection checks for. Packed rows
    // (indexed-db-entry-packs.ts) changed no store, key or index: no new version, no upgrade.
    dexie.version(1).stores({
      entries: '[doc+seq], doc',
      heads: 'doc',
      kv: '[table+key], table',
    });
    this.#dexie = dexie;
    return dexie;
  }

  /** Log entries keyed by [doc, seq]. */
  get entries(): Table<EntryRow, [string, number]> {
    return this.dexie.table('entries');
  }

  /** Per-document head sequence numbers. */
  get heads(): Table<HeadRow, string> {
    return this.dexie.table('heads');
  }

  /** Key-value records keyed by [table, key]. */
  get kv(): Table<KvRow, [string, string]> {
    return this.dexie.table('kv');
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
      this.#dexie?.close();
      // Reads already running on it finish first: IndexedDB closes a connection after its
      // transactions. One still opening is closed by #openNative.
      this.#nativeDb?.close();
      this.#nativeDb = null;
    }
  }

  /** The connection batched reads run on: the plain one when the database exists as Dexie left it, else Dexie's. */
  async #readDatabase(): Promise<IDBDatabase> {
    if (this.#closed) throw new SyncError('Unavailable', 'the database is closed');
    const dexie = this.#dexie;
    if (this.#native === null && dexie?.isOpen()) return dexie.backendDB();
    this.#native ??= this.#openNative().catch((error: unknown) => {
      // This batch fails with the error; the next read tries again.
      this.#native = null;
      throw error;
    });
    const native = await this.#native;
    if (native) return native;
    if (this.#closed) throw new SyncError('Unavailable', 'the database is closed');
    if (!this.dexie.isOpen()) await this.dexie.open();
    return this.dexie.backendDB();
  }

  async #openNative(): Promise<IDBDatabase | null> {
    const db = await openReadConnection(this.#factory, this.#name);
    if (!db) return null;
    if (this.#closed) {
      db.close();
      return null;
    }
    // Another connection (a newer schema in another tab, a deletion) waits for ours: let it go,
    // and open again on the next read. The browser may also close it (storage cleared).
    db.onversionchange = db.onclose = () => {
      db.close();
      if (this.#nativeDb === db) {
        this.#nativeDb = null;
        this.#native = null;
      }
    };
    this.#nativeDb = db;
    return db;
  }
}
