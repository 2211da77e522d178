import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RelayStore } from '@scopesync/core';
import { SqliteRelayStore } from '@scopesync/store-sqlite';
import { MemoryRelayStore } from './memory-relay-store.ts';
import { runRelayStoreSuite } from './relay-store-suite.ts';

runRelayStoreSuite('MemoryRelayStore', async () => ({ subject: new MemoryRelayStore() }));

// The relay depends on @scopesync/store-sqlite (not the other way round), so the shared suite
// runs the SQLite store from here.
runRelayStoreSuite(
  'SqliteRelayStore',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scopesync-relay-store-'));
    const path = join(dir, 'relay.sqlite');
    const open = (): RelayStore => new SqliteRelayStore({ path });
    return {
      subject: open(),
      reopen: async () => open(),
      teardown: () => rm(dir, { recursive: true, force: true }),
    };
  },
  { durable: true },
);
