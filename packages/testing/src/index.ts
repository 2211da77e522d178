export type { DocStoreFixture, DocStoreSetup } from './doc-store-suite.ts';
export { runDocStoreSuite } from './doc-store-suite.ts';
export type { RelayStoreFixture, RelayStoreSetup } from './relay-store-suite.ts';
export { runRelayStoreSuite } from './relay-store-suite.ts';
export type { SeededRandom } from './seeded-random.ts';
export { replaySeed, SEED_ENV, seededRandom, seeds, withSeed } from './seeded-random.ts';
