import { isSyncError, SyncError } from '@scopesync/core';
import { runDocStoreSuite, seededRandom } from '@scopesync/testing';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PostgresDocStore } from './postgres-doc-store.ts';
import { openPostgresPool, toSafeInteger } from './postgres-pool.ts';
import { connectTestDatabase, TEST_POOL } from './test-postgres.ts';

// Fails the whole file with one line on how to start PostgreSQL when it is not running.
const db = await connectTestDatabase();
afterAll(() => db.end());

const open = (schema: string): Promise<PostgresDocStore> =>
  PostgresDocStore.open({ url: db.url, schema, poolOptions: TEST_POOL });

runDocStoreSuite('PostgresDocStore', async () => {
  const schema = db.newSchema();
  return {
    subject: await open(schema),
    reopen: () => open(schema),
    teardown: () => db.dropSchema(schema),
  };
});

/** Items of a test log: an entry is a JSON array of item names (one for an append, many for a snapshot). */
const items = (...names: string[]): Uint8Array => new TextEncoder().encode(JSON.stringify(names));
const namesOf = (data: Uint8Array): string[] => JSON.parse(new TextDecoder().decode(data)) as string[];

describe('PostgresDocStore across relays', () => {
  const stores: PostgresDocStore[] = [];
  let schema = '';
  const relay = async (): Promise<PostgresDocStore> => {
    const store = await open(schema);
    stores.push(store);
    return store;
  };
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    await db.dropSchema(schema);
  });
  const fresh = () => {
    schema = db.newSchema();
  };

  it('gives concurrent appends from two relays gap-free seqs in commit order', async () => {
    fresh();
    const [a, b, reader] = [await relay(), await relay(), await relay()];
    // Each relay appends singles and two-document batches (whose head locks could deadlock if
    // taken in item order); a third polls `load(doc, lastSeen)` like a relay catching up.
    const work = (store: PostgresDocStore, tag: string) =>
      Array.from({ length: 60 }, async (_, i) => {
        const name = `${tag}${i}`;
        if (i % 3 === 0) {
          const seqs = await store.appendBatch([
            { doc: 'doc', data: items(name) },
            { doc: 'other', data: items(name) },
            { doc: 'doc', data: items(`${name}+`) },
          ]);
          return [
            { doc: 'doc', name, seq: seqs[0] },
            { doc: 'other', name, seq: seqs[1] },
            { doc: 'doc', name: `${name}+`, seq: seqs[2] },
          ];
        }
        const doc = i % 3 === 1 ? 'doc' : 'other';
        return [{ doc, name, seq: await store.append(doc, items(name)) }];
      });

    let writing = true;
    const polled = (async () => {
      const seen: Array<{ seq: number; name: string }> = [];
      for (;;) {
        const finished = !writing;
        const page = await reader.load('doc', seen.at(-1)?.seq ?? 0);
        for (const e of page) {
          // Had a seq committed before a lower one, this reader would have skipped the lower one.
          expect(e.seq, 'the next seq a poller sees follows the last one').toBe((seen.at(-1)?.seq ?? 0) + 1);
          seen.push({ seq: e.seq, name: namesOf(e.data)[0] as string });
        }
        if (finished && page.length === 0) return seen;
      }
    })();
    const appended = (await Promise.all([...work(a, 'a'), ...work(b, 'b')])).flat();
    writing = false;
    const seen = await polled;

    for (const doc of ['doc', 'other']) {
      const mine = appended.filter((x) => x.doc === doc).sort((p, q) => (p.seq ?? 0) - (q.seq ?? 0));
      expect(mine.map((x) => x.seq)).toEqual(mine.map((_, i) => i + 1));
      const log = await reader.load(doc);
      expect(log.map((e) => [e.seq, namesOf(e.data)[0]])).toEqual(mine.map((x) => [x.seq, x.name]));
      expect(await a.head(doc)).toBe(mine.length);
    }
    expect(seen).toEqual(
      appended
        .filter((x) => x.doc === 'doc')
        .sort((p, q) => (p.seq ?? 0) - (q.seq ?? 0))
        .map(({ seq, name }) => ({ seq, name })),
    );
  });

  it('loses nothing when two relays compact one document while a third appends', async () => {
    fresh();
    const [appender, c1, c2] = [await relay(), await relay(), await relay()];
    const random = seededRandom(0xc0a1);
    const expected: string[] = [];
    let appending = true;
    let compactions = 0;
    let conflicts = 0;

    const compactor = async (store: PostgresDocStore) => {
      while (appending) {
        const log = await store.load('doc');
        if (log.length < 2) continue;
        const through = (log[random.int(0, log.length - 1)] as { seq: number }).seq;
        const covered = log.filter((e) => e.seq <= through).flatMap((e) => namesOf(e.data));
        try {
          await store.compact('doc', through, items(...covered));
          compactions++;
        } catch (error) {
          // Another relay compacted past `through` after this one loaded: nothing to do.
          if (!isSyncError(error, 'Conflict')) throw error;
          conflicts++;
        }
      }
    };
    const append = async () => {
      for (let i = 0; i < 200; i++) {
        if (i % 7 === 0) {
          await appender.appendBatch([
            { doc: 'doc', data: items(`${i}a`) },
            { doc: 'doc', data: items(`${i}b`) },
          ]);
          expected.push(`${i}a`, `${i}b`);
        } else {
          await appender.append('doc', items(String(i)));
          expected.push(String(i));
        }
      }
      appending = false;
    };
    await Promise.all([append(), compactor(c1), compactor(c2)]);

    const log = await appender.load('doc');
    const seqs = log.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((p, q) => p - q));
    // Every appended item exactly once: none lost, none duplicated by a snapshot.
    expect(log.flatMap((e) => namesOf(e.data)).sort()).toEqual([...expected].sort());
    expect(await appender.head('doc')).toBe(expected.length);
    expect(compactions).toBeGreaterThan(0);
    expect(compactions + conflicts).toBeGreaterThan(1);
  });

  it('runs on a lent pool and leaves it open', async () => {
    fresh();
    const pool = await openPostgresPool(db.url, TEST_POOL);
    try {
      const store = await PostgresDocStore.open({ pool, schema });
      expect(await store.append('doc', items('x'))).toBe(1);
      await store.close();
      await expect(store.head('doc')).rejects.toSatisfy((e) => isSyncError(e, 'Unavailable'));
      const { rows } = await pool.query(`SELECT count(*) AS n FROM "${schema}".doc_entries`);
      expect(rows[0].n).toBe(1n);
    } finally {
      await pool.end();
    }
  });
});

describe('PostgresDocStore paged load', () => {
  let store: PostgresDocStore | undefined;
  let schema = '';
  afterEach(async () => {
    await store?.close();
    await db.dropSchema(schema);
  });

  it('loads at most `limit` entries, from which the next page continues', async () => {
    schema = db.newSchema();
    store = await open(schema);
    const seqs: number[] = [];
    for (let i = 0; i < 10; i++) seqs.push(await store.append('doc', items(String(i))));
    await store.compact('doc', seqs[2] as number, items('0', '1', '2'));
    const pages: number[][] = [];
    let since = 0;
    for (;;) {
      const page = await store.load('doc', since, 3);
      if (page.length === 0) break;
      pages.push(page.map((e) => e.seq));
      since = page.at(-1)?.seq as number;
    }
    expect(pages).toEqual([seqs.slice(2, 5), seqs.slice(5, 8), seqs.slice(8, 10)]);
    expect(await store.load('doc', 0, 0)).toEqual([]);
    expect((await store.load('doc', seqs[8], 100)).map((e) => e.seq)).toEqual([seqs[9]]);
    for (const bad of [-1, 1.5, Number.NaN]) {
      await expect(store.load('doc', 0, bad)).rejects.toSatisfy((e) => isSyncError(e, 'BadRequest'));
    }
  });
});

describe('PostgresDocStore int8 seqs', () => {
  let store: PostgresDocStore | undefined;
  let schema = '';
  afterEach(async () => {
    await store?.close();
    await db.dropSchema(schema);
  });

  it('parses int8 as bigint and hands out numbers only while they are exact', async () => {
    const { rows } = await db.pool.query('SELECT 9007199254740993::int8 AS n');
    expect(rows[0].n).toBe(9007199254740993n);
    expect(toSafeInteger(2n ** 40n, 'seq')).toBe(2 ** 40);
    expect(toSafeInteger('42', 'seq')).toBe(42);
    expect(() => toSafeInteger(2n ** 53n, 'seq')).toThrow(SyncError);

    schema = db.newSchema();
    store = await open(schema);
    expect(await store.append('doc', items('1'))).toBe(1);
    await db.pool.query(`UPDATE "${schema}".doc_heads SET seq = $1 WHERE doc = 'doc'`, [2 ** 40]);
    expect(await store.append('doc', items('2'))).toBe(2 ** 40 + 1);
    expect((await store.load('doc', 2 ** 40)).map((e) => e.seq)).toEqual([2 ** 40 + 1]);
    expect(await store.head('doc')).toBe(2 ** 40 + 1);

    // At the last exact integer the next append fails, and commits nothing.
    await db.pool.query(`UPDATE "${schema}".doc_heads SET seq = $1 WHERE doc = 'doc'`, [
      Number.MAX_SAFE_INTEGER,
    ]);
    await expect(store.append('doc', items('3'))).rejects.toSatisfy((e) => isSyncError(e));
    expect(await store.head('doc')).toBe(Number.MAX_SAFE_INTEGER);
    expect((await store.load('doc')).map((e) => e.seq)).toEqual([1, 2 ** 40 + 1]);
  });
});

describe('PostgresDocStore errors', () => {
  it('fails to open with one Unavailable error naming the server, not its password, when PostgreSQL is unreachable', async () => {
    const error = await PostgresDocStore.open({ url: 'postgres://root:s3cret@127.0.0.1:1/test' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSyncError(error, 'Unavailable'), String(error)).toBe(true);
    expect((error as Error).message).toMatch(
      /cannot reach PostgreSQL at postgres:\/\/root:\*\*\*@127\.0\.0\.1:1\/test/,
    );
    expect((error as Error).message).not.toContain('s3cret');
  });

  it('refuses bad options with BadRequest', async () => {
    for (const options of [{}, { url: db.url, schema: 'Bad-Name' }, { url: db.url, schema: 'x"; DROP' }]) {
      await expect(PostgresDocStore.open(options)).rejects.toSatisfy((e) => isSyncError(e, 'BadRequest'));
    }
  });

  it('refuses a document name PostgreSQL text cannot hold with BadRequest', async () => {
    const schema = db.newSchema();
    const store = await open(schema);
    try {
      await expect(store.append('nul\0name', items('x'))).rejects.toSatisfy((e) =>
        isSyncError(e, 'BadRequest'),
      );
      expect(await store.docs()).toEqual([]);
    } finally {
      await store.close();
      await db.dropSchema(schema);
    }
  });
});
