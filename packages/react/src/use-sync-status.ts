import type { ConnectionStatus } from '@scopesync/client';
import { useCallback } from 'react';
import { useClient } from './client-context.ts';
import { useChanges } from './use-changes.ts';

/** The client's connection as {@link useSyncStatus} reports it. */
export interface SyncStatusState {
  /** `online`, `connecting`, `offline`, `auth-failed` (the relay refused the key) or `closed`. */
  readonly status: ConnectionStatus;
  /** True while the socket to the relay is open. */
  readonly online: boolean;
}

/** The client's connection to the relay, re-rendering when it changes. */
export function useSyncStatus(): SyncStatusState {
  const client = useClient();
  useChanges(useCallback((onChange: () => void) => client.on('status', onChange), [client]));
  return { status: client.status, online: client.online };
}
