export type { DocStoreFixture, DocStoreSetup } from './doc-store-suite.ts';
export { runDocStoreSuite } from './doc-store-suite.ts';
export type { SeededRandom } from './seeded-random.ts';
export { replaySeed, SEED_ENV, seededRandom, seeds, withSeed } from './seeded-random.ts';
