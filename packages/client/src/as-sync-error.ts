import { type ErrorKind, SyncError } from '@scopesync/core';

/** `error` itself when it is a SyncError, else a SyncError of `kind` that says `message` and keeps it as the cause. */
export function asSyncError(error: unknown, kind: ErrorKind, message: string): SyncError {
  if (error instanceof SyncError) return error;
  return new SyncError(kind, `${message}: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
  });
}
