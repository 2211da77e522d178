import { runRelayStoreSuite } from '@scopesync/testing';
import { expect } from 'vitest';
import { instrumentRelayStore } from './instrumented-relay-store.ts';
import { MemoryRelayStore } from './memory-relay-store.ts';
import { Metrics } from './metrics.ts';

// The SQLite store runs the same suite in @scopesync/store-sqlite.
runRelayStoreSuite('MemoryRelayStore', async () => ({ subject: new MemoryRelayStore() }));

// The relay only ever sees its store through the metrics wrapper: the contract, transactions
// included, must hold through it too.
runRelayStoreSuite('MemoryRelayStore behind instrumentRelayStore', async () => {
  const metrics = new Metrics();
  const seconds = metrics.histogram('scopesync_relay_store_seconds', 'Latency of relay store calls.');
  return {
    subject: instrumentRelayStore(new MemoryRelayStore(), seconds),
    teardown: async () => {
      // Every call the suite made was observed.
      expect(metrics.render()).toMatch(/scopesync_relay_store_seconds_count [1-9]/);
    },
  };
});
