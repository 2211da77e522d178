import type { RelayStore } from '@scopesync/core';
import { afterEach, beforeEach, describe } from 'vitest';
import { accountTests, identityKeyTests } from './relay-store-suite-accounts.ts';
import { auditTests } from './relay-store-suite-audit.ts';
import type { RelayStoreSuiteContext } from './relay-store-suite-context.ts';
import { encryptionTests } from './relay-store-suite-encryption.ts';
import { invariantTests } from './relay-store-suite-invariants.ts';
import { lifecycleTests } from './relay-store-suite-lifecycle.ts';
import { objectTests } from './relay-store-suite-objects.ts';
import { modGrantTests, shareTests } from './relay-store-suite-sharing.ts';
import { transactionTests } from './relay-store-suite-transactions.ts';

// The relay store suite's entry point: the fixture of each test, its set-up and teardown, and the
// areas in order. Each area's tests live in a relay-store-suite-<area>.ts module of their own.

/** What a {@link RelayStoreSetup} hands to {@link runRelayStoreSuite} for one test. */
export interface RelayStoreFixture {
  /** A fresh, empty store. The suite closes it after the test. */
  readonly subject: RelayStore;
  /**
   * Opens a new store over the same data, after the suite closed `subject`; the suite closes
   * what it returns. Omit it for stores that keep nothing; the durability test is then skipped.
   */
  readonly reopen?: () => Promise<RelayStore>;
  /** Releases files and directories, after every store of the test is closed. */
  readonly teardown?: () => Promise<void>;
}

/** Creates the store under test; called once per test. */
export type RelayStoreSetup = () => Promise<RelayStoreFixture>;

/**
 * Registers a Vitest `describe(name)` block that checks a {@link RelayStore} against its
 * contract in `@scopesync/core`: users and key hashes, object metadata and raw blob bytes with
 * versions, shares, key grants, wrapped keys, the chained audit log, mod grants, the
 * invariants every backend keeps, transactions, durability across reopen (when the fixture
 * can reopen), and close.
 */
export function runRelayStoreSuite(name: string, setup: RelayStoreSetup): void {
  describe(name, () => {
    let fixture: RelayStoreFixture;
    let open: RelayStore[] = [];
    const ctx: RelayStoreSuiteContext = {
      store: (): RelayStore => fixture.subject,
      canReopen: () => fixture.reopen !== undefined,
      reopen: async () => {
        if (!fixture.reopen) throw new Error('runRelayStoreSuite: the fixture has no reopen');
        const again = await fixture.reopen();
        open.push(again);
        return again;
      },
    };

    beforeEach(async () => {
      fixture = await setup();
      open = [fixture.subject];
    });
    afterEach(async () => {
      for (const s of open) await s.close();
      await fixture.teardown?.();
    });

    // The areas in the order their tests have always run in, which is the order vitest reports.
    accountTests(ctx);
    objectTests(ctx);
    shareTests(ctx);
    identityKeyTests(ctx);
    encryptionTests(ctx);
    auditTests(ctx);
    modGrantTests(ctx);
    invariantTests(ctx);
    transactionTests(ctx);
    lifecycleTests(ctx);
  });
}
