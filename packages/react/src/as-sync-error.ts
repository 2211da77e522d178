import { isSyncError, SyncError } from '@scopesync/client';

/** `error` as a SyncError (anything else becomes an Internal one, keeping it as the cause). */
export function asSyncError(error: unknown): SyncError {
  return isSyncError(error) ? error : new SyncError('Internal', String(error), { cause: error });
}
