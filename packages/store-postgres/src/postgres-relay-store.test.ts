import {
  type AuditRecord,
  isSyncError,
  Level,
  type ObjectRecord,
  SyncError,
  type UserRecord,
} from '@scopesync/core';
import { sealAuditEntry, verifyAuditChain } from '@scopesync/relay';
import { runRelayStoreSuite } from '@scopesync/testing';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PostgresChallengeStore } from './postgres-challenge-store.ts';
import { PostgresRelayStore } from './postgres-relay-store.ts';
import { connectTestDatabase, TEST_POOL } from './test-postgres.ts';

// Fails the whole file with one line on how to start PostgreSQL when it is not running.
const db = await connectTestDatabase();
afterAll(() => db.end());

const open = (schema: string): Promise<PostgresRelayStore> =>
  PostgresRelayStore.open({ url: db.url, schema, poolOptions: TEST_POOL });

runRelayStoreSuite('PostgresRelayStore', async () => {
  const schema = db.newSchema();
  return {
    subject: await open(schema),
    reopen: () => open(schema),
    teardown: () => db.dropSchema(schema),
  };
});

const ALICE = 'user_00000000000000a1';

function user(userId: string, signPk: string | null = null): UserRecord {
  return { userId, level: Level.User, deviceName: 'laptop', signPk, boxPk: null, createdAt: 1 };
}

function object(name: string): ObjectRecord {
  return {
    name,
    owner: ALICE,
    read: 2,
    write: 1,
    encrypted: false,
    minEpoch: 0,
    createdAt: 1,
    updatedAt: 1,
    size: 0,
    version: 0,
  };
}

/** Appends one audit entry about `key`. */
function audit(store: Pick<PostgresRelayStore, 'appendAudit'>, key: string, ts = 1): Promise<AuditRecord> {
  return store.appendAudit((head) =>
    sealAuditEntry(
      head,
      {
        accessor: ALICE,
        target: ALICE,
        scope: 'blob',
        key,
        action: 'read',
        result: 'ok',
        channel: 'http',
        reason: 'owner',
      },
      ts,
    ),
  );
}

async function kindOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'resolved',
    (e: unknown) => (isSyncError(e) ? e.kind : `not a SyncError: ${String(e)}`),
  );
}

/** Several relays (each its own pool) over one fresh schema, closed and dropped after the test. */
function relays() {
  const stores: Array<{ close(): Promise<void> }> = [];
  let schema = '';
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    if (schema !== '') await db.dropSchema(schema);
    schema = '';
  });
  return {
    async relays(n: number): Promise<PostgresRelayStore[]> {
      schema ||= db.newSchema();
      const opened = await Promise.all(Array.from({ length: n }, () => open(schema)));
      stores.push(...opened);
      return opened;
    },
    async challenges(n: number): Promise<PostgresChallengeStore[]> {
      schema ||= db.newSchema();
      const opened = await Promise.all(
        Array.from({ length: n }, () =>
          PostgresChallengeStore.open({ url: db.url, schema, poolOptions: TEST_POOL }),
        ),
      );
      stores.push(...opened);
      return opened;
    },
    get schema() {
      return schema;
    },
  };
}

describe('PostgresRelayStore audit chain across relays', () => {
  const fixture = relays();

  it('chains concurrent appends from three relays into one verifiable chain', async () => {
    const stores = await fixture.relays(3);
    const appended = await Promise.all(
      stores.flatMap((store, r) => Array.from({ length: 25 }, (_, i) => audit(store, `r${r}-${i}`, i))),
    );
    expect(new Set(appended.map((e) => e.seq)).size).toBe(75);
    const log = await (stores[0] as PostgresRelayStore).queryAudit({});
    expect(log.map((e) => e.seq)).toEqual(Array.from({ length: 75 }, (_, i) => i + 1));
    // Walk it: each entry names the hash of the one before.
    log.forEach((entry, i) => {
      expect(entry.prevHash).toBe(i === 0 ? '0'.repeat(64) : log[i - 1]?.hash);
    });
    expect(new Set(log.map((e) => e.key))).toEqual(new Set(appended.map((e) => e.key)));
    for (const store of stores) {
      expect(await verifyAuditChain(store)).toMatchObject({ ok: true, entries: 75 });
      expect(await store.auditHead()).toEqual({ seq: 75, hash: log[74]?.hash });
    }
  });

  it('cannot fork: a second entry after the same one is refused by the schema', async () => {
    const [store] = await fixture.relays(1);
    const first = await audit(store as PostgresRelayStore, 'a');
    await audit(store as PostgresRelayStore, 'b');
    const fork = sealAuditEntry(
      first,
      {
        accessor: 'x',
        target: 'x',
        scope: 'blob',
        key: 'fork',
        action: 'read',
        result: 'ok',
        channel: 'ws',
        reason: 'r',
      },
      9,
    );
    const error = await db.pool
      .query(
        `INSERT INTO "${fixture.schema}".audit (seq, id, ts, accessor, target, scope, key, action, result, channel, reason, prev_hash, hash)
         VALUES (99, $1, 9, 'x', 'x', 'blob', 'fork', 'read', 'ok', 'ws', 'r', $2, $3)`,
        [fork.id, fork.prevHash, fork.hash],
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((error as { code?: string } | undefined)?.code).toBe('23505');
    // And the store refuses an entry that does not chain to the head.
    expect(await kindOf((store as PostgresRelayStore).appendAudit(() => ({ ...fork, seq: 3 })))).toBe(
      'Conflict',
    );
    expect(await verifyAuditChain(store as PostgresRelayStore)).toMatchObject({ ok: true, entries: 2 });
  });
});

describe('PostgresRelayStore.transaction', () => {
  const fixture = relays();

  it('commits everything done through tx together, and reads its own writes', async () => {
    const [store, other] = (await fixture.relays(2)) as [PostgresRelayStore, PostgresRelayStore];
    let seenOutside: unknown = 'unset';
    const result = await store.transaction(async (tx) => {
      await tx.createUser(user(ALICE), { keyHash: 'h1', userId: ALICE, createdAt: 1, revokedAt: null });
      await tx.createObject(object('blob/b'));
      await tx.putBlobData('blob/b', { data: new Uint8Array([1, 2]), create: object('blob/b'), now: 5 });
      await audit(tx, 'b');
      expect(await tx.getUser(ALICE)).toEqual(user(ALICE));
      expect(await tx.getBlobData('blob/b')).toEqual(new Uint8Array([1, 2]));
      seenOutside = await other.getObject('blob/b');
      return 'done';
    });
    expect(result).toBe('done');
    expect(seenOutside).toBeNull();
    expect(await other.getUser(ALICE)).toEqual(user(ALICE));
    expect(await other.getObject('blob/b')).toMatchObject({ version: 1, size: 2 });
    expect(await verifyAuditChain(other)).toMatchObject({ ok: true, entries: 1 });
  });

  it('keeps nothing when the callback rejects, and passes its error on unchanged', async () => {
    const [store] = (await fixture.relays(1)) as [PostgresRelayStore];
    const boom = new Error('boom');
    const error = await store
      .transaction(async (tx) => {
        await tx.createUser(user(ALICE), { keyHash: 'h1', userId: ALICE, createdAt: 1, revokedAt: null });
        await audit(tx, 'x');
        throw boom;
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBe(boom);
    expect(await store.getUser(ALICE)).toBeNull();
    expect(await store.auditHead()).toBeNull();
    expect(await store.countUsers()).toBe(0);
  });

  it('stays usable after a call inside it rejects, which changes nothing', async () => {
    const [store] = (await fixture.relays(1)) as [PostgresRelayStore];
    await store.createUser(user(ALICE, 'pk'), {
      keyHash: 'h1',
      userId: ALICE,
      createdAt: 1,
      revokedAt: null,
    });
    await store.transaction(async (tx) => {
      const bob = 'user_00000000000000b0';
      // Same signing key: Conflict, and nothing of it stays.
      expect(
        await kindOf(
          tx.createUser(user(bob, 'pk'), { keyHash: 'h2', userId: bob, createdAt: 1, revokedAt: null }),
        ),
      ).toBe('Conflict');
      expect(await tx.getUser(bob)).toBeNull();
      await tx.createObject(object('blob/after'));
    });
    expect(await store.getObject('blob/after')).toEqual(object('blob/after'));
    expect(await store.getKey('h2')).toBeNull();
  });

  it('runs read-modify-write transactions from two relays as if one after another', async () => {
    const [a, b] = (await fixture.relays(2)) as [PostgresRelayStore, PostgresRelayStore];
    await a.createObject(object('blob/counter'));
    const increment = (store: PostgresRelayStore) =>
      store.transaction(async (tx) => {
        const current = (await tx.getObject('blob/counter')) as ObjectRecord;
        await tx.updateObject('blob/counter', { minEpoch: current.minEpoch + 1 });
        await audit(tx, `epoch ${current.minEpoch + 1}`);
      });
    await Promise.all(Array.from({ length: 12 }, (_, i) => increment(i % 2 === 0 ? a : b)));
    expect((await a.getObject('blob/counter'))?.minEpoch).toBe(12);
    const log = await b.queryAudit({});
    expect(log.map((e) => e.key)).toEqual(Array.from({ length: 12 }, (_, i) => `epoch ${i + 1}`));
    expect(await verifyAuditChain(b)).toMatchObject({ ok: true, entries: 12 });
  });

  it('runs transactions of one store side by side: one can wait for another to commit', async () => {
    const [store] = (await fixture.relays(1)) as [PostgresRelayStore];
    let letFirstFinish = (): void => undefined;
    const secondCommitted = new Promise<void>((resolve) => {
      letFirstFinish = resolve;
    });
    // Run one after another (as a store-wide gate would), the first would wait for ever.
    const first = store.transaction(async (tx) => {
      await tx.createObject(object('PUBLIC_RW/_/first'));
      await secondCommitted;
      return tx.getObject('PUBLIC_RW/_/second');
    });
    await store.transaction(async (tx) => {
      await tx.createObject(object('PUBLIC_RW/_/second'));
    });
    letFirstFinish();
    // SERIALIZABLE: the first began before the second committed, so it does not see its row.
    expect(await first).toBeNull();
    expect(await store.getObject('PUBLIC_RW/_/first')).toEqual(object('PUBLIC_RW/_/first'));
  });

  it('serves other callers of the store while a transaction is open, refusing only calls from its callback', async () => {
    const [store] = (await fixture.relays(1)) as [PostgresRelayStore];
    let opened = (): void => undefined;
    const isOpen = new Promise<void>((resolve) => {
      opened = resolve;
    });
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let fromCallback: Promise<string> | undefined;
    let afterwards: Promise<unknown> | undefined;
    const transaction = store.transaction(async (tx) => {
      await tx.createObject(object('PUBLIC_RW/_/inside'));
      fromCallback = kindOf(store.getObject('PUBLIC_RW/_/inside'));
      // A continuation that outlives the callback is an ordinary caller again.
      afterwards = released
        .then(() => new Promise((resolve) => setTimeout(resolve, 10)))
        .then(() => store.getObject('PUBLIC_RW/_/inside'));
      opened();
      await released;
    });
    await isOpen;
    // Other requests of this relay run meanwhile (and see nothing uncommitted), reads and writes.
    expect(await store.getObject('PUBLIC_RW/_/inside')).toBeNull();
    expect(await store.createObject(object('PUBLIC_RW/_/outside'))).toEqual(object('PUBLIC_RW/_/outside'));
    release();
    await transaction;
    expect(await fromCallback).toBe('Internal');
    expect(await afterwards).toEqual(object('PUBLIC_RW/_/inside'));
  });

  it('passes a seal error inside a transaction through unchanged, and goes on', async () => {
    const [store] = (await fixture.relays(1)) as [PostgresRelayStore];
    const boom = new Error('seal failed');
    await store.transaction(async (tx) => {
      await audit(tx, 'a');
      const error = await tx
        .appendAudit(() => {
          throw boom;
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBe(boom);
      await audit(tx, 'b');
    });
    expect((await store.queryAudit({})).map((e) => e.key)).toEqual(['a', 'b']);
  });

  it('refuses calls on tx after the transaction ended, and transactions after close', async () => {
    const [store] = (await fixture.relays(1)) as [PostgresRelayStore];
    let kept: { getUser(id: string): Promise<unknown> } | undefined;
    await store.transaction(async (tx) => {
      kept = tx;
    });
    expect(await kindOf((kept as { getUser(id: string): Promise<unknown> }).getUser(ALICE))).toBe('Internal');
    await store.close();
    expect(await kindOf(store.transaction(async () => 1))).toBe('Unavailable');
  });
});

describe('PostgresRelayStore races between relays', () => {
  const fixture = relays();

  it('lets one of two relays win a compare-and-set blob write', async () => {
    const [a, b] = (await fixture.relays(2)) as [PostgresRelayStore, PostgresRelayStore];
    for (let round = 0; round < 5; round++) {
      const version = (await a.getObject('blob/x'))?.version ?? 0;
      const put = (store: PostgresRelayStore, byte: number) =>
        store.putBlobData('blob/x', {
          data: new Uint8Array([byte]),
          expectedVersion: version,
          create: object('blob/x'),
          now: round,
        });
      const kinds = (await Promise.all([kindOf(put(a, 1)), kindOf(put(b, 2))])).sort();
      expect(kinds).toEqual(['PreconditionFailed', 'resolved']);
      expect((await b.getObject('blob/x'))?.version).toBe(version + 1);
    }
  });

  it('registers a signing key to one user only, whichever relays race for it', async () => {
    const stores = (await fixture.relays(2)) as PostgresRelayStore[];
    const kinds = await Promise.all(
      Array.from({ length: 6 }, (_, i) => {
        const id = `user_00000000000000c${i}`;
        return kindOf(
          (stores[i % 2] as PostgresRelayStore).createUser(user(id, 'same-key'), {
            keyHash: `k${i}`,
            userId: id,
            createdAt: 1,
            revokedAt: null,
          }),
        );
      }),
    );
    expect(kinds.filter((k) => k === 'resolved')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'Conflict')).toHaveLength(5);
    expect(await (stores[0] as PostgresRelayStore).countUsers()).toBe(1);
  });

  it('creates an object once when relays race to create it', async () => {
    const stores = (await fixture.relays(2)) as PostgresRelayStore[];
    const created = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (stores[i % 2] as PostgresRelayStore).createObject({
          ...object('PUBLIC_RW/_/x'),
          owner: `owner${i}`,
        }),
      ),
    );
    expect(new Set(created.map((o) => o.owner)).size).toBe(1);
  });
});

describe('PostgresChallengeStore', () => {
  const fixture = relays();

  it('redeems a challenge once, on any relay, and never after it expired', async () => {
    const [a, b] = (await fixture.challenges(2)) as [PostgresChallengeStore, PostgresChallengeStore];
    await a.issue('c1', 1000);
    expect(await kindOf(b.issue('c1', 2000))).toBe('Conflict');
    expect(await b.redeem('c1', 999)).toBe(true);
    expect(await a.redeem('c1', 999)).toBe(false);
    expect(await a.redeem('never-issued', 0)).toBe(false);

    await a.issue('expired', 1000);
    expect(await b.redeem('expired', 1000)).toBe(false);

    await a.issue('raced', 5000);
    const wins = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).redeem('raced', 1)));
    expect(wins.filter(Boolean)).toHaveLength(1);

    await a.issue('old', 10);
    await a.issue('new', 100);
    expect(await b.purge(50)).toBe(1);
    expect(await a.redeem('new', 60)).toBe(true);
  });

  it('rejects with Unavailable after close', async () => {
    const [a] = (await fixture.challenges(1)) as [PostgresChallengeStore];
    await a.close();
    await a.close();
    await expect(a.redeem('x', 1)).rejects.toSatisfy(
      (e) => e instanceof SyncError && e.kind === 'Unavailable',
    );
  });
});
