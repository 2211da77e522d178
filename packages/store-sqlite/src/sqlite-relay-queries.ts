/**
 * The base of the SQLite relay store's query layers: the connection every layer runs its
 * statements on.
 */

import type { SqliteHandle } from './sqlite-handle.ts';

/**
 * The handle every query layer of the relay store runs on. The layers (accounts, objects,
 * sharing, audit) each prepare the statements of one area and add its methods; they stack only
 * so that one object carries them all, and none reaches another's statements.
 */
export abstract class SqliteRelayQueries {
  /** The store's hold on its database. */
  protected readonly handle: SqliteHandle;

  constructor(handle: SqliteHandle) {
    this.handle = handle;
  }

  /** Runs one synchronous step ({@link SqliteHandle.run}); a failure says `cannot <what>`. */
  protected run<T>(what: string, step: () => T): T {
    return this.handle.run(`cannot ${what}`, step);
  }
}
