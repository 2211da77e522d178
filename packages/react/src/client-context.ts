import type { SyncClient } from '@scopesync/client';
import { createContext, createElement, type ReactNode, useContext } from 'react';

const ClientContext = createContext<SyncClient | null>(null);

/** Props of {@link ScopeSyncProvider}. */
export interface ScopeSyncProviderProps {
  /** The client the hooks below use (from `createClient`); closing it stays the app's job. */
  readonly client: SyncClient;
  readonly children?: ReactNode;
}

/** Makes `client` the one every scopesync hook in `children` uses. */
export function ScopeSyncProvider({ client, children }: ScopeSyncProviderProps): ReactNode {
  return createElement(ClientContext.Provider, { value: client }, children);
}

/** The client of the nearest {@link ScopeSyncProvider}; throws when there is none. */
export function useClient(): SyncClient {
  const client = useContext(ClientContext);
  if (!client)
    throw new Error('scopesync: wrap the components that use its hooks in <ScopeSyncProvider client={…}>');
  return client;
}
