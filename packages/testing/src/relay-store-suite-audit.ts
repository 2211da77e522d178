import { expect, it } from 'vitest';
import { expectKind } from './relay-store-suite-async.ts';
import { auditChain, GENESIS_HASH, sealEntry } from './relay-store-suite-audit-entries.ts';
import type { RelayStoreSuiteContext } from './relay-store-suite-context.ts';
import { ALICE, BOB } from './relay-store-suite-records.ts';

// The relay store suite's tests of the audit log: appending a hash chain, querying it, and
// refusing an entry that does not follow the head.

/** Registers the tests of the audit log's chain and queries. */
export function auditTests({ store }: RelayStoreSuiteContext): void {
  it('appends a hash chain to the audit log and queries it', async () => {
    const event = (target: string, ts: number) =>
      store().appendAudit((head) => sealEntry(head, { accessor: BOB, target }, ts));
    expect(await store().auditHead()).toBeNull();
    const first = await event(ALICE, 100);
    expect(first).toMatchObject({ seq: 1, id: `AUDIT::${BOB}::${ALICE}::100`, prevHash: GENESIS_HASH });
    const second = await event(BOB, 200);
    await event(ALICE, 300);
    expect(second.prevHash).toBe(first.hash);
    expect(await store().auditHead()).toEqual({
      seq: 3,
      hash: (await store().queryAudit({ afterSeq: 2 }))[0]?.hash,
    });
    expect((await store().queryAudit({ target: ALICE })).map((e) => e.seq)).toEqual([1, 3]);
    expect((await store().queryAudit({ since: 200 })).map((e) => e.seq)).toEqual([2, 3]);
    expect((await store().queryAudit({ afterSeq: 1, limit: 1 })).map((e) => e.seq)).toEqual([2]);
    expect(await store().queryAudit({ limit: 0 })).toEqual([]);
    expect(await auditChain(store())).toHaveLength(3);
  });

  it('refuses audit entries that do not follow the head, and appends nothing for a seal that throws', async () => {
    const first = await store().appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE }, 1));
    // A seq that skips ahead, one that repeats, and a prevHash that is not the head's.
    await expectKind(
      store().appendAudit((head) => ({ ...sealEntry(head, { accessor: BOB, target: ALICE }, 2), seq: 9 })),
      'Conflict',
    );
    await expectKind(
      store().appendAudit(() => first),
      'Conflict',
    );
    await expectKind(
      store().appendAudit((head) => ({
        ...sealEntry(head, { accessor: BOB, target: ALICE }, 2),
        prevHash: GENESIS_HASH,
      })),
      'Conflict',
    );
    const boom = new Error('seal failed');
    await expect(
      store().appendAudit(() => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await store().auditHead()).toEqual({ seq: 1, hash: first.hash });
    await store().appendAudit((head) => sealEntry(head, { accessor: BOB, target: ALICE }, 3));
    expect(await auditChain(store())).toHaveLength(2);
  });
}
