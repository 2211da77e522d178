/** Messages between the bench (parent) and a server child process. */

/** Parent → child: a request answered with a `reply` carrying the same id. */
export type ParentRequest =
  | { readonly type: 'gc'; readonly id: number }
  | { readonly type: 'rss'; readonly id: number }
  | { readonly type: 'stats'; readonly id: number }
  | { readonly type: 'close'; readonly id: number };

/** Child → parent. */
export type ChildMessage =
  | { readonly type: 'ready'; readonly port: number }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'reply'; readonly id: number; readonly value: number | ServerStats | null };

/** Server-specific storage figures a child can report about itself. */
export interface ServerStats {
  /** Bytes of stored document entries as the server counts them (e.g. SQLite blob lengths). */
  readonly storedEntryBytes?: number;
}
