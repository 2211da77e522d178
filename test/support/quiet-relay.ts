import { createClient, memoryClientStore, type SyncClient } from '@scopesync/client';
import type { RelayOptions } from '@scopesync/relay';
import WebSocket from 'ws';
import { startTestRelay, type TestRelay } from './start-test-relay.ts';

/** A relay over the given stores, and a way to open memory-store clients of it. */
export interface QuietRelay {
  readonly relay: TestRelay;
  /** Opens a client on a fresh memory store; closed by the cleanups. */
  open(): Promise<SyncClient>;
}

/**
 * Starts a relay over `stores` with rate limits off and its log silenced (the tests that use it
 * make the store fail on purpose, and the relay logs each failure as an error). Everything it
 * starts is closed by `cleanups`, in reverse order.
 */
export async function startQuietRelay(
  stores: NonNullable<RelayOptions['stores']>,
  cleanups: Array<() => Promise<void> | void>,
): Promise<QuietRelay> {
  const relay = await startTestRelay({ stores, rateLimit: false, log: () => undefined });
  cleanups.push(() => relay.close());
  return {
    relay,
    open: async () => {
      const client = await createClient({ url: relay.url, WebSocket, store: memoryClientStore() });
      cleanups.push(() => client.close());
      return client;
    },
  };
}
