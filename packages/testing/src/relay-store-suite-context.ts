import type { RelayStore } from '@scopesync/core';

// What each area of the relay store suite gets from runRelayStoreSuite: the store of the test
// that runs, and a way to reopen it. The suite owns set-up and teardown; an area only registers
// its tests.

/** The current test's store and fixture, as the suite's areas see them. */
export interface RelayStoreSuiteContext {
  /** The store under test: fresh and empty at the start of each test, closed by the suite after it. */
  readonly store: () => RelayStore;
  /** Whether the fixture can reopen the store over the same data (the durability checks need it). */
  readonly canReopen: () => boolean;
  /** Opens a new store over the same data, once `store()` is closed; the suite closes it after the test. */
  readonly reopen: () => Promise<RelayStore>;
}
