import { type DocStore, type ErrorKind, isSyncError, type StoredEntry } from '@scopesync/core';
import { encodeUtf8 } from 'lib0/string';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { type SeededRandom, seededRandom, seeds, withSeed } from './seeded-random.ts';

/** What a {@link DocStoreSetup} hands to {@link runDocStoreSuite} for one test. */
export interface DocStoreFixture {
  /** A fresh, empty store. The suite closes it after the test. */
  readonly subject: DocStore;
  /**
   * Opens a new store over the same data. The suite calls it only after closing `subject`
   * (and any store an earlier `reopen` returned), and closes what it returns. Omit it for
   * stores that keep nothing across close; the durability test is then skipped.
   */
  readonly reopen?: () => Promise<DocStore>;
  /** Releases what setup created (files, directories), after every store of the test is closed. */
  readonly teardown?: () => Promise<void>;
}

/** Creates the store under test; called once per test. */
export type DocStoreSetup = () => Promise<DocStoreFixture>;

/** Size of the large entries: big enough to cross any page, chunk or message-size boundary a store has. */
const MIB = 1024 * 1024;

/**
 * Registers a Vitest `describe(name)` block that checks a {@link DocStore} against the
 * contract in `@scopesync/core`: sequence numbers, loading, batches, compaction, removal,
 * listing, concurrency, large and reused buffers, durability across reopen, and close.
 */
export function runDocStoreSuite(name: string, setup: DocStoreSetup): void {
  describe(name, () => {
    let fixture: DocStoreFixture | undefined;
    let opened: DocStore[] = [];

    /** The store of the current test. */
    const store = (): DocStore => {
      if (!fixture) throw new Error('runDocStoreSuite: setup did not run');
      return fixture.subject;
    };

    /** Closes every store of the test, then reopens over the same data. */
    const reopen = async (): Promise<DocStore> => {
      const open = fixture?.reopen;
      if (!open) throw new Error('runDocStoreSuite: the fixture has no reopen');
      for (const s of opened) await s.close();
      const next = await open();
      opened.push(next);
      return next;
    };

    beforeEach(async () => {
      fixture = await setup();
      opened = [fixture.subject];
    });

    afterEach(async () => {
      try {
        for (const s of opened) await s.close();
      } finally {
        await fixture?.teardown?.();
        fixture = undefined;
        opened = [];
      }
    });

    describe('append and load', () => {
      it('assigns increasing sequence numbers and loads entries in append order', async () => {
        const s = store();
        const seqs: number[] = [];
        for (let i = 0; i < 5; i++) seqs.push(await s.append('doc', entry(i)));
        expectIncreasing(seqs);
        expect(await s.head('doc')).toBe(seqs[4]);
        expect(plain(await s.load('doc'))).toEqual(seqs.map((seq, i) => [seq, [...entry(i)]]));
      });

      it('keeps each document its own log', async () => {
        const s = store();
        const a1 = await s.append('a', entry(1));
        const b1 = await s.append('b', entry(2));
        const a2 = await s.append('a', entry(3));
        expect(plain(await s.load('a'))).toEqual([
          [a1, [...entry(1)]],
          [a2, [...entry(3)]],
        ]);
        expect(plain(await s.load('b'))).toEqual([[b1, [...entry(2)]]]);
        expect(await s.head('a')).toBe(a2);
        expect(await s.head('b')).toBe(b1);
      });

      it('loads nothing and reports head 0 for an unknown document', async () => {
        const s = store();
        await s.append('known', entry(0));
        expect(await s.load('unknown')).toEqual([]);
        expect(await s.load('unknown', 5)).toEqual([]);
        expect(await s.head('unknown')).toBe(0);
      });

      it('reads the heads of several documents at once, 0 for one without entries (if it offers heads)', async () => {
        const s = store();
        if (s.heads === undefined) return;
        const a1 = await s.append('a', entry(0));
        const b1 = await s.append('b', entry(1));
        const a2 = await s.append('a', entry(2));
        await s.append('c', entry(3));
        await s.remove('c');
        const heads = await s.heads(['a', 'b', 'c', 'unknown']);
        expect(Object.fromEntries(heads)).toEqual({ a: a2, b: b1, c: await s.head('c'), unknown: 0 });
        expect(a2).toBeGreaterThan(a1);
        expect((await s.heads([])).size).toBe(0);
      });

      it('loads only the entries after sinceSeq', async () => {
        const s = store();
        const seqs: number[] = [];
        for (let i = 0; i < 6; i++) seqs.push(await s.append('doc', entry(i)));
        const head = seqs[5] as number;
        expect(seqsOf(await s.load('doc', 0))).toEqual(seqs);
        expect(seqsOf(await s.load('doc'))).toEqual(seqs);
        expect(seqsOf(await s.load('doc', seqs[1]))).toEqual(seqs.slice(2));
        expect(plain(await s.load('doc', seqs[4]))).toEqual([[head, [...entry(5)]]]);
        expect(await s.load('doc', head)).toEqual([]);
        expect(await s.load('doc', head + 100)).toEqual([]);
      });

      it('loads at most limit entries, the lowest seqs first', async () => {
        const s = store();
        const seqs: number[] = [];
        for (let i = 0; i < 6; i++) seqs.push(await s.append('doc', entry(i)));
        await s.append('other', entry(9));
        expect(plain(await s.load('doc', 0, 2))).toEqual([
          [seqs[0], [...entry(0)]],
          [seqs[1], [...entry(1)]],
        ]);
        expect(seqsOf(await s.load('doc', seqs[1], 3))).toEqual(seqs.slice(2, 5));
        expect(seqsOf(await s.load('doc', seqs[4], 3))).toEqual(seqs.slice(5));
        expect(seqsOf(await s.load('doc', undefined, 1))).toEqual(seqs.slice(0, 1));
        expect(seqsOf(await s.load('doc', 0, 100))).toEqual(seqs);
        expect(await s.load('doc', 0, 0)).toEqual([]);
        expect(await s.load('unknown', 0, 3)).toEqual([]);
        expect(seqsOf(await s.load('doc', 0, undefined))).toEqual(seqs);
      });

      it('pages through a log with limit and the last seq of each page, across a compaction', async () => {
        const s = store();
        const seqs: number[] = [];
        for (let i = 0; i < 11; i++) seqs.push(await s.append('doc', entry(i)));
        await s.compact('doc', seqs[3] as number, encodeUtf8('snap'));
        const paged: StoredEntry[] = [];
        let since = 0;
        for (;;) {
          const page = await s.load('doc', since, 3);
          expect(page.length).toBeLessThanOrEqual(3);
          paged.push(...page);
          if (page.length < 3) break;
          since = (page.at(-1) as StoredEntry).seq;
        }
        expect(plain(paged)).toEqual(plain(await s.load('doc')));
        expect(seqsOf(paged)).toEqual(seqs.slice(3));
      });

      it('rejects a limit that is not a non-negative integer with BadRequest', async () => {
        const s = store();
        await s.append('doc', entry(1));
        for (const limit of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          await expectRejection(() => s.load('doc', 0, limit), 'BadRequest', `load with limit ${limit}`);
        }
      });

      it('reports the newest sequence number as head after every append', async () => {
        const s = store();
        for (let i = 0; i < 4; i++) {
          const seq = await s.append('doc', entry(i));
          expect(await s.head('doc')).toBe(seq);
        }
      });

      it('stores empty entries', async () => {
        const s = store();
        const seq = await s.append('doc', new Uint8Array(0));
        const [loaded] = await s.load('doc');
        expect(loaded?.seq).toBe(seq);
        expect(loaded?.data).toBeInstanceOf(Uint8Array);
        expect(loaded?.data.byteLength).toBe(0);
      });

      it('accepts any string as a document name', async () => {
        const s = store();
        const names = [
          'USER_PUBLIC/user_0123456789abcdef/notes/a.md',
          'quote\'and"double',
          '100%_done',
          'a%',
          'a_',
          'ünïcødé/😀',
          ' spaced name ',
        ];
        for (const [i, doc] of names.entries()) await s.append(doc, entry(i));
        for (const [i, doc] of names.entries()) {
          expect(plain(await s.load(doc)).map(([, data]) => data)).toEqual([[...entry(i)]]);
        }
        expect(new Set(await s.docs())).toEqual(new Set(names));
      });
    });

    describe('appendBatch', () => {
      it('assigns sequence numbers in item order across documents', async () => {
        const s = store();
        const before = await s.append('a', entry(0));
        const docs = ['a', 'b', 'a', 'c', 'a', 'b'];
        const seqs = await s.appendBatch(docs.map((doc, i) => ({ doc, data: entry(10 + i) })));
        expect(seqs).toHaveLength(docs.length);
        for (const doc of ['a', 'b', 'c']) {
          const mine = seqs.filter((_, i) => docs[i] === doc);
          expectIncreasing(doc === 'a' ? [before, ...mine] : mine);
          expect(await s.head(doc)).toBe(mine[mine.length - 1]);
          const expected = docs.flatMap((d, i) => (d === doc ? [[seqs[i], [...entry(10 + i)]]] : []));
          expect(plain(await s.load(doc)).slice(doc === 'a' ? 1 : 0)).toEqual(expected);
        }
      });

      it('resolves an empty batch with no sequence numbers and stores nothing', async () => {
        const s = store();
        expect(await s.appendBatch([])).toEqual([]);
        expect(await s.docs()).toEqual([]);
      });

      it('stores nothing when one item of a batch is invalid', async () => {
        const s = store();
        const seq = await s.append('a', entry(0));
        const bad = { doc: 'a', data: undefined as unknown as Uint8Array };
        await expectRejection(() =>
          s.appendBatch([
            { doc: 'a', data: entry(1) },
            { doc: 'b', data: entry(2) },
            bad,
            { doc: 'a', data: entry(3) },
          ]),
        );
        expect(plain(await s.load('a'))).toEqual([[seq, [...entry(0)]]]);
        expect(await s.load('b')).toEqual([]);
        expect(await s.docs()).toEqual(['a']);
        expect(await s.head('a')).toBe(seq);
        // The store is still usable and the next seq follows the last stored one.
        expect(await s.append('a', entry(4))).toBeGreaterThan(seq);
      });
    });

    describe('compact', () => {
      it('replaces the entries through throughSeq by one snapshot at throughSeq and keeps later ones', async () => {
        const s = store();
        const seqs: number[] = [];
        for (let i = 0; i < 5; i++) seqs.push(await s.append('doc', entry(i)));
        const snapshot = encodeUtf8('snapshot 0-2');
        await s.compact('doc', seqs[2] as number, snapshot);
        expect(plain(await s.load('doc'))).toEqual([
          [seqs[2], [...snapshot]],
          [seqs[3], [...entry(3)]],
          [seqs[4], [...entry(4)]],
        ]);
        // A reader that had seen part of the compacted range gets the snapshot again.
        expect(seqsOf(await s.load('doc', seqs[0]))).toEqual(seqs.slice(2));
        expect(seqsOf(await s.load('doc', seqs[2]))).toEqual(seqs.slice(3));
        expect(await s.head('doc')).toBe(seqs[4]);
      });

      it('compacts through the newest entry and keeps appending after it', async () => {
        const s = store();
        const seqs: number[] = [];
        for (let i = 0; i < 3; i++) seqs.push(await s.append('doc', entry(i)));
        const head = seqs[2] as number;
        await s.compact('doc', head, encodeUtf8('all'));
        expect(plain(await s.load('doc'))).toEqual([[head, [...encodeUtf8('all')]]]);
        expect(await s.head('doc')).toBe(head);
        const next = await s.append('doc', entry(9));
        expect(next).toBeGreaterThan(head);
        expect(seqsOf(await s.load('doc'))).toEqual([head, next]);
        // Compacting through the snapshot itself is allowed too.
        await s.compact('doc', next, encodeUtf8('again'));
        expect(plain(await s.load('doc'))).toEqual([[next, [...encodeUtf8('again')]]]);
      });

      for (const seed of seeds(3)) {
        it(`rebuilds the same Yjs document after repeated compactions [seed ${seed}]`, () =>
          withSeed('compaction keeps the Yjs document', seed, async (random) => {
            const s = store();
            const original = new Y.Doc();
            const pending: Uint8Array[] = [];
            original.on('update', (update: Uint8Array) => pending.push(update));
            for (let round = 0; round < 6; round++) {
              for (let i = random.int(1, 12); i > 0; i--) editRandomly(original, random);
              const updates = pending.splice(0);
              if (random.bool()) await s.appendBatch(updates.map((data) => ({ doc: 'ydoc', data })));
              else for (const data of updates) await s.append('ydoc', data);
              const log = await s.load('ydoc');
              const through = random.pick(log).seq;
              const covered = log.filter((e) => e.seq <= through).map((e) => e.data);
              await s.compact('ydoc', through, Y.mergeUpdates(covered));
              const after = await s.load('ydoc');
              expect(seqsOf(after)).toEqual(seqsOf(log).filter((seq) => seq >= through));
              expectSameYDoc(rebuild(after), original);
            }
          }));
      }

      it('rejects with Conflict when throughSeq is not a stored seq, and changes nothing', async () => {
        const s = store();
        const seqs: number[] = [];
        for (let i = 0; i < 4; i++) seqs.push(await s.append('doc', entry(i)));
        await s.compact('doc', seqs[1] as number, encodeUtf8('snap'));
        await s.append('gone', entry(7));
        const goneHead = await s.head('gone');
        await s.remove('gone');
        const before = plain(await s.load('doc'));
        const head = seqs[3] as number;
        const attempts: Array<[string, number]> = [
          ['doc', head + 1],
          ['doc', head + 1000],
          ['doc', 0],
          ['doc', -1],
          ['doc', (seqs[2] as number) + 0.5],
          ['doc', seqs[0] as number], // compacted away
          ['unknown', 1],
          ['gone', goneHead], // removed
        ];
        for (const [doc, through] of attempts) {
          await expectRejection(() => s.compact(doc, through, encodeUtf8('bad')), 'Conflict');
        }
        expect(plain(await s.load('doc'))).toEqual(before);
        expect(await s.head('doc')).toBe(head);
        expect(await s.load('gone')).toEqual([]);
        expect(await s.docs()).toEqual(['doc']);
      });

      it('loses nothing when a compaction fails', async () => {
        const s = store();
        const seqs: number[] = [];
        for (let i = 0; i < 4; i++) seqs.push(await s.append('doc', entry(i)));
        const before = plain(await s.load('doc'));
        await expectRejection(() => s.compact('doc', seqs[2] as number, undefined as unknown as Uint8Array));
        expect(plain(await s.load('doc'))).toEqual(before);
        expect(await s.head('doc')).toBe(seqs[3]);
        // And a good compaction still works afterwards.
        await s.compact('doc', seqs[2] as number, encodeUtf8('snap'));
        expect(seqsOf(await s.load('doc'))).toEqual(seqs.slice(2));
      });

      it('keeps appends that race with a compaction', async () => {
        const s = store();
        const seqs: number[] = [];
        for (let i = 0; i < 3; i++) seqs.push(await s.append('doc', entry(i)));
        const [, x, y, batch] = await Promise.all([
          s.compact('doc', seqs[2] as number, encodeUtf8('snap')),
          s.append('doc', entry(10)),
          s.append('doc', entry(11)),
          s.appendBatch([{ doc: 'doc', data: entry(12) }]),
        ]);
        const log = plain(await s.load('doc'));
        expect(log[0]).toEqual([seqs[2], [...encodeUtf8('snap')]]);
        expect(new Set(log.slice(1).map(([, data]) => String(data)))).toEqual(
          new Set([entry(10), entry(11), entry(12)].map((d) => String([...d]))),
        );
        expect(seqsOf(await s.load('doc')).slice(1)).toEqual(
          [x, y, batch[0]].sort((p, q) => (p ?? 0) - (q ?? 0)),
        );
      });
    });

    describe('remove', () => {
      it('removes every entry of the document and only that document', async () => {
        const s = store();
        for (let i = 0; i < 3; i++) await s.append('doomed', entry(i));
        const kept = await s.append('kept', entry(9));
        await s.remove('doomed');
        expect(await s.load('doomed')).toEqual([]);
        expect(await s.docs()).toEqual(['kept']);
        expect(plain(await s.load('kept'))).toEqual([[kept, [...entry(9)]]]);
      });

      it('never reuses sequence numbers after remove', async () => {
        const s = store();
        let last = 0;
        for (let i = 0; i < 3; i++) last = await s.append('doc', entry(i));
        await s.compact('doc', last, encodeUtf8('snap'));
        await s.remove('doc');
        expect(await s.head('doc')).toBe(last);
        const next = await s.append('doc', entry(5));
        expect(next).toBeGreaterThan(last);
        const [batched] = await s.appendBatch([{ doc: 'doc', data: entry(6) }]);
        expect(batched).toBeGreaterThan(next);
        expect(plain(await s.load('doc'))).toEqual([
          [next, [...entry(5)]],
          [batched, [...entry(6)]],
        ]);
      });

      it('treats removing an unknown or already removed document as a no-op', async () => {
        const s = store();
        await s.remove('never-existed');
        await s.append('doc', entry(0));
        await s.remove('doc');
        await s.remove('doc');
        expect(await s.docs()).toEqual([]);
        expect(await s.head('never-existed')).toBe(0);
      });
    });

    describe('docs', () => {
      it('lists the documents holding entries, sorted, filtered by prefix', async () => {
        const s = store();
        const names = ['b/2', 'a_b', 'axb', 'a%c', 'abc', 'b/1', 'a', 'c', 'removed'];
        for (const doc of names) await s.append(doc, entry(0));
        const compacted = await s.append('c', entry(1));
        await s.compact('c', compacted, encodeUtf8('snap'));
        await s.remove('removed');
        const all = ['a', 'a%c', 'a_b', 'abc', 'axb', 'b/1', 'b/2', 'c'];
        expect(await s.docs()).toEqual(all);
        expect(await s.docs('')).toEqual(all);
        expect(await s.docs('a')).toEqual(['a', 'a%c', 'a_b', 'abc', 'axb']);
        // SQL LIKE wildcards in a prefix are plain characters.
        expect(await s.docs('a_')).toEqual(['a_b']);
        expect(await s.docs('a%')).toEqual(['a%c']);
        expect(await s.docs('b/')).toEqual(['b/1', 'b/2']);
        expect(await s.docs('b/2')).toEqual(['b/2']);
        expect(await s.docs('B')).toEqual([]);
        expect(await s.docs('removed')).toEqual([]);
        expect(await s.docs('zzz')).toEqual([]);
      });
    });

    describe('concurrency and size', () => {
      it('stores hundreds of concurrent appends under distinct sequence numbers', async () => {
        const s = store();
        const docs = ['d0', 'd1', 'd2', 'd3'];
        const singles = Array.from({ length: 400 }, (_, i) => ({
          doc: docs[i % docs.length] as string,
          data: entry(i),
        }));
        const batches = Array.from({ length: 20 }, (_, b) =>
          Array.from({ length: 5 }, (_, j) => ({
            doc: docs[(b + j) % docs.length] as string,
            data: entry(1000 + b * 5 + j),
          })),
        );
        const results = await Promise.all([
          ...singles.map(async (item) => [{ ...item, seq: await s.append(item.doc, item.data) }]),
          ...batches.map(async (items) => {
            const seqs = await s.appendBatch(items);
            return items.map((item, i) => ({ ...item, seq: seqs[i] as number }));
          }),
        ]);
        const appended = results.flat();
        for (const doc of docs) {
          const mine = appended.filter((a) => a.doc === doc);
          const log = await s.load(doc);
          expect(log).toHaveLength(mine.length);
          expect(new Set(mine.map((a) => a.seq)).size).toBe(mine.length);
          expectIncreasing(seqsOf(log));
          const bySeq = new Map(log.map((e) => [e.seq, [...e.data]]));
          for (const a of mine) expect(bySeq.get(a.seq)).toEqual([...a.data]);
          expect(await s.head(doc)).toBe(Math.max(...mine.map((a) => a.seq)));
        }
      });

      it('stores multi-MiB entries byte for byte', async () => {
        const s = store();
        const random = seededRandom(0x1a76e);
        const big = random.bytes(6 * MIB + 7);
        const also = random.bytes(3 * MIB);
        const seq = await s.append('big', big);
        const [seq2] = await s.appendBatch([
          { doc: 'big', data: also },
          { doc: 'small', data: entry(1) },
        ]);
        const log = await s.load('big');
        expect(seqsOf(log)).toEqual([seq, seq2]);
        expectSameBytes(log[0]?.data, big);
        expectSameBytes(log[1]?.data, also);
        const snapshot = random.bytes(5 * MIB + 1);
        await s.compact('big', seq2 as number, snapshot);
        const [compacted] = await s.load('big');
        expectSameBytes(compacted?.data, snapshot);
      });

      it('copies data in and out: later changes to the caller’s buffers change nothing stored', async () => {
        const s = store();
        const appended = entry(1);
        const batched = entry(2);
        const snapshot = entry(3);
        await s.append('doc', appended);
        const [seq] = await s.appendBatch([{ doc: 'doc', data: batched }]);
        appended.fill(0xee);
        batched.fill(0xee);
        expect(plain(await s.load('doc')).map(([, data]) => data)).toEqual([[...entry(1)], [...entry(2)]]);

        await s.compact('doc', seq as number, snapshot);
        snapshot.fill(0xee);
        const [loaded] = await s.load('doc');
        loaded?.data.fill(0xdd);
        expect(plain(await s.load('doc'))).toEqual([[seq, [...entry(3)]]]);
      });

      it('stores exactly the bytes of a view into a larger buffer', async () => {
        const s = store();
        const backing = Uint8Array.from({ length: 64 }, (_, i) => i);
        const view = backing.subarray(10, 20);
        const seq = await s.append('doc', view);
        await s.appendBatch([{ doc: 'doc', data: backing.subarray(60) }]);
        const log = plain(await s.load('doc'));
        expect(log[0]).toEqual([seq, [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]]);
        expect(log[1]?.[1]).toEqual([60, 61, 62, 63]);
      });
    });

    describe('durability', () => {
      it('keeps entries, heads, compactions and removals across close and reopen', async (t) => {
        if (!fixture?.reopen) {
          t.skip('this store keeps nothing across close');
          return;
        }
        const s = store();
        const seqs: number[] = [];
        for (let i = 0; i < 4; i++) seqs.push(await s.append('doc', entry(i)));
        await s.appendBatch([
          { doc: 'other', data: entry(5) },
          { doc: 'doc', data: entry(6) },
        ]);
        await s.compact('doc', seqs[1] as number, encodeUtf8('snap'));
        const removedHead = await s.append('removed', entry(7));
        await s.remove('removed');
        const expected = {
          doc: plain(await s.load('doc')),
          other: plain(await s.load('other')),
          docs: await s.docs(),
          head: await s.head('doc'),
        };

        let reopened = await reopen();
        expect(plain(await reopened.load('doc'))).toEqual(expected.doc);
        expect(plain(await reopened.load('other'))).toEqual(expected.other);
        expect(await reopened.docs()).toEqual(expected.docs);
        expect(await reopened.head('doc')).toBe(expected.head);
        expect(await reopened.head('removed')).toBe(removedHead);
        const next = await reopened.append('removed', entry(8));
        expect(next).toBeGreaterThan(removedHead);
        const after = await reopened.append('doc', entry(9));
        expect(after).toBeGreaterThan(expected.head);

        // A second reopen sees what the first reopened store wrote.
        reopened = await reopen();
        expect(plain(await reopened.load('removed'))).toEqual([[next, [...entry(8)]]]);
        expect(seqsOf(await reopened.load('doc', expected.head))).toEqual([after]);
      });
    });

    describe('close', () => {
      it('closes idempotently', async () => {
        const s = store();
        await s.append('doc', entry(0));
        await s.close();
        await s.close();
        await Promise.all([s.close(), s.close()]);
      });

      it('rejects every method after close with Unavailable', async () => {
        const s = store();
        const seq = await s.append('doc', entry(0));
        await s.close();
        const calls: Array<[string, () => Promise<unknown>]> = [
          ['append', () => s.append('doc', entry(1))],
          ['appendBatch', () => s.appendBatch([{ doc: 'doc', data: entry(1) }])],
          ['load', () => s.load('doc')],
          ['head', () => s.head('doc')],
          ['compact', () => s.compact('doc', seq, entry(2))],
          ['remove', () => s.remove('doc')],
          ['docs', () => s.docs()],
        ];
        for (const [method, call] of calls) await expectRejection(call, 'Unavailable', method);
      });
    });
  });
}

/** A small payload unique to `i`. */
function entry(i: number): Uint8Array {
  return encodeUtf8(`entry #${i}`);
}

/** Entries as `[seq, bytes]` pairs of plain numbers: readable diffs, and no Buffer/Uint8Array mismatch. */
function plain(entries: readonly StoredEntry[]): Array<[number, number[]]> {
  return entries.map((e) => {
    expect(e.data).toBeInstanceOf(Uint8Array);
    return [e.seq, [...e.data]];
  });
}

function seqsOf(entries: readonly StoredEntry[]): number[] {
  return entries.map((e) => e.seq);
}

function expectIncreasing(seqs: readonly number[]): void {
  for (const [i, seq] of seqs.entries()) {
    expect(Number.isSafeInteger(seq) && seq > 0, `seq ${seq} is a positive integer`).toBe(true);
    if (i > 0) expect(seq).toBeGreaterThan(seqs[i - 1] as number);
  }
}

/** Byte equality without building a multi-MiB diff. */
function expectSameBytes(actual: Uint8Array | undefined, expected: Uint8Array): void {
  expect(actual).toBeInstanceOf(Uint8Array);
  const a = actual as Uint8Array;
  expect(a.byteLength).toBe(expected.byteLength);
  let firstDifference = -1;
  for (let i = 0; i < a.byteLength; i++) {
    if (a[i] !== expected[i]) {
      firstDifference = i;
      break;
    }
  }
  expect(firstDifference, 'index of the first differing byte').toBe(-1);
}

/**
 * Awaits a call that must reject (not throw synchronously), optionally with a SyncError of
 * `kind`.
 */
async function expectRejection(
  call: () => Promise<unknown>,
  kind?: ErrorKind,
  what = 'the call',
): Promise<void> {
  let promise: Promise<unknown>;
  try {
    promise = call();
  } catch (error) {
    throw new Error(`${what} threw synchronously instead of returning a rejected promise: ${String(error)}`, {
      cause: error,
    });
  }
  try {
    await promise;
  } catch (error) {
    if (kind !== undefined) {
      expect(
        isSyncError(error, kind),
        `${what} should reject with SyncError ${kind}, got ${String(error)}`,
      ).toBe(true);
    }
    return;
  }
  throw new Error(`${what} resolved; expected it to reject${kind === undefined ? '' : ` with ${kind}`}`);
}

/** One random edit of text, map or array, each producing one update. */
function editRandomly(doc: Y.Doc, random: SeededRandom): void {
  const text = doc.getText('text');
  const map = doc.getMap<number | string>('map');
  const list = doc.getArray<string>('list');
  switch (random.int(0, 4)) {
    case 0:
      text.insert(random.int(0, text.length), random.word());
      break;
    case 1:
      if (text.length > 0) {
        const at = random.int(0, text.length - 1);
        text.delete(at, random.int(1, text.length - at));
      } else text.insert(0, random.word());
      break;
    case 2:
      map.set(random.word(1, 2), random.bool() ? random.int(0, 1000) : random.word());
      break;
    case 3:
      list.insert(random.int(0, list.length), [random.word()]);
      break;
    default:
      if (list.length > 0) list.delete(random.int(0, list.length - 1), 1);
      else map.delete(random.word(1, 2));
  }
}

/** A fresh Y.Doc built from a loaded log; fails if any update is missing a dependency. */
function rebuild(entries: readonly StoredEntry[]): Y.Doc {
  const doc = new Y.Doc();
  for (const e of entries) Y.applyUpdate(doc, e.data);
  expect(doc.store.pendingStructs, 'updates waiting for a missing dependency').toBeNull();
  expect(doc.store.pendingDs, 'deletions waiting for a missing dependency').toBeNull();
  return doc;
}

function expectSameYDoc(actual: Y.Doc, expected: Y.Doc): void {
  expect(actual.getText('text').toString()).toBe(expected.getText('text').toString());
  expect(actual.getMap('map').toJSON()).toEqual(expected.getMap('map').toJSON());
  expect(actual.getArray('list').toJSON()).toEqual(expected.getArray('list').toJSON());
  expect([...Y.encodeStateVector(actual)]).toEqual([...Y.encodeStateVector(expected)]);
  // Same deletions too, not only the same insertions.
  expect(Y.equalSnapshots(Y.snapshot(actual), Y.snapshot(expected)), 'equal Yjs snapshots').toBe(true);
}
