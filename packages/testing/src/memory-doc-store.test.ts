import { MemoryDocStore } from '@scopesync/core';
import { runDocStoreSuite } from './index.ts';

// core cannot depend on testing (turbo forbids the cycle), so core's reference store is checked here.
runDocStoreSuite('MemoryDocStore', async () => ({ subject: new MemoryDocStore() }));
