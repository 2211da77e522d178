import { fork } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median } from '../driver/stats.ts';
import { ERROR_CELL, type Outcome, type Workload } from '../driver/workload.ts';
import type { Cell, MetricRow } from '../report.ts';
import type { PeerName } from '../servers/peer.ts';
import type { ClientRestartResult } from './client-restart.child.ts';
import type { ColdStartResult, StoreKind } from './cold-start.child.ts';

/** Keystrokes of automerge-paper kept as separate entries after the stored state. */
const RESTART_TAIL = 50;

/**
 * Workload 5: a client with `docs` documents in its local IndexedDB store (fake-indexeddb)
 * starts cold: time to the first document read and to all loaded. Ours (IndexedDbDocStore)
 * against y-indexeddb on the same documents. Each store is filled in a fresh process and read
 * back in another one holding a copy of the databases, so the read inherits no heap and no
 * compiled code from the fill, nor from the other store.
 */
export const coldStart: Workload = {
  id: 'cold-start',
  title: '5. Client cold start',
  async run(ctx) {
    const { docs, updatesPerDoc, rounds } = ctx.config.coldStart;
    // Fresh processes in turn (ours, theirs, ours, …) so drift on the machine hits both alike.
    const runs: Record<StoreKind, Array<Outcome<ColdStartResult>>> = {
      scopesync: [],
      'scopesync-client': [],
      'y-indexeddb': [],
    };
    for (let round = 0; round < rounds; round++) {
      for (const kind of ['scopesync', 'scopesync-client', 'y-indexeddb'] as const)
        runs[kind].push(await measureIn(kind, docs, updatesPerDoc));
    }
    const ours = combine(runs.scopesync);
    const client = combine(runs['scopesync-client']);
    const theirs = combine(runs['y-indexeddb']);
    for (const [label, outcome] of [
      ['scopesync', ours],
      ['scopesync client log', client],
      ['y-indexeddb', theirs],
    ] as const) {
      ctx.log(`cold start: ${label} ${outcome.ok ? 'done' : `failed: ${outcome.error}`}`);
      if (!outcome.ok) ctx.fail(`${label} failed in cold start: ${outcome.error}`);
    }
    const cells = (
      pick: (r: ColdStartResult) => Cell,
      mine: Outcome<ColdStartResult> = ours,
    ): Partial<Record<PeerName, Cell>> => ({
      scopesync: mine.ok ? pick(mine.value) : ERROR_CELL,
      'y-websocket': theirs.ok ? pick(theirs.value) : ERROR_CELL,
      hocuspocus: 'n/a',
    });
    const restart = await runChild<ClientRestartResult>(
      './client-restart.child.ts',
      [String(ctx.config.coldStart.rounds), String(RESTART_TAIL)],
      300_000,
    );
    ctx.log(`cold start: automerge-paper restart ${restart.ok ? 'done' : `failed: ${restart.error}`}`);
    const restartRows = restartMetrics(restart);
    return {
      id: this.id,
      title: this.title,
      rows: [
        { metric: 'time to first read', unit: 'ms', better: 'lower', values: cells((r) => r.firstReadMs) },
        {
          metric: `time to all ${docs.toLocaleString('en-US')} loaded`,
          unit: 'ms',
          better: 'lower',
          values: cells((r) => r.allLoadedMs),
        },
        { metric: 'documents loaded correctly', unit: 'docs', better: null, values: cells((r) => r.correct) },
        {
          metric: 'client log after an earlier start: time to first read',
          unit: 'ms',
          better: 'lower',
          values: cells((r) => r.firstReadMs, client),
        },
        {
          metric: `client log after an earlier start: time to all ${docs.toLocaleString('en-US')} loaded`,
          unit: 'ms',
          better: 'lower',
          values: cells((r) => r.allLoadedMs, client),
        },
        {
          metric: 'client log after an earlier start: documents loaded correctly',
          unit: 'docs',
          better: null,
          values: cells((r) => r.correct, client),
        },
        ...restartRows,
      ],
      notes: [
        `${docs.toLocaleString('en-US')} documents of ${updatesPerDoc} small text updates each, written through each store in a fresh process and the store closed; the process's databases are copied (plain IndexedDB API, bench/src/driver/idb-snapshot.ts) into a second fresh process, which imports the store, collects its garbage (twice: one forced collection left its sweeping inside the timed read, bench/src/driver/heap.ts), then starts the clock, opens the store and reads every document into a Y.Doc — none of the read path (Dexie, the store, Yjs's apply) has run in it before, as in a page load. Earlier runs filled and read in one process, where the fill's garbage and its optimized code were collected inside the first read. Each store is measured in ${rounds} pairs of processes, taken in turn with the other's; the figures are medians (the least-correct run for the count). Both on fake-indexeddb in Node. Ours: IndexedDbDocStore from @scopesync/client; peer: y-indexeddb (IndexeddbPersistence, one database per document), the store the y-websocket and Hocuspocus providers use for offline data — its figures sit in the y-websocket column; the Hocuspocus column is n/a rather than a copy.`,
        `"Client log after an earlier start": the same documents through the client's own path — its LocalDocLog on the IndexedDB client store (document record and entries), each edit appended as a local entry and then acknowledged, as the relay does — after the page was opened once since (each doc loaded; DocHandle then merges a doc's acknowledged entries into one snapshot, packages/client/src/local-doc-log.ts compactSettled), then read back as DocHandle loads a doc (record and entries in one batched read). The y-indexeddb figures beside it are the same run's as above: y-indexeddb keeps every update until a doc has more than 500 (PREFERRED_TRIM_SIZE), so an earlier start leaves its ${updatesPerDoc} rows as they were.`,
        'Documents load 32 at a time after the first; each text is compared with what was written. Both read into a Y.Doc named after the document: an unnamed one draws a random UUID through crypto.getRandomValues, which in Node on a busy machine cost about as much as the read itself for either store.',
        restart.ok
          ? `automerge-paper after a restart: the store holds the doc as its state before the last ${restart.value.tail} keystrokes (${(restart.value.stateBytes / 1024).toFixed(1)} KiB, one entry, as a fresh client stores the relay's first answer) plus those ${restart.value.tail} keystrokes as entries of their own; it is closed, reopened and the doc read into a fresh Y.Doc. Ours: the client's LocalDocLog on IndexedDbDocStore (document record and entries), applied entry by entry in one transaction as DocHandle does; peer: y-indexeddb holding the same updates. Bare = Y.applyUpdate of the same state and tail into a fresh Y.Doc with no store, the floor of any store. Medians of ${ctx.config.coldStart.rounds} reloads taken in turn in one process (fake-indexeddb).`
          : `automerge-paper restart skipped or failed: ${restart.error}`,
      ],
      details: { runs, restart },
    };
  },
};

/** Medians over runs; the first failure if any run failed. */
function combine(runs: ReadonlyArray<Outcome<ColdStartResult>>): Outcome<ColdStartResult> {
  const failed = runs.find((r) => !r.ok);
  if (failed) return failed;
  const values = runs.flatMap((r) => (r.ok ? [r.value] : []));
  return {
    ok: true,
    value: {
      firstReadMs: median(values.map((v) => v.firstReadMs)),
      allLoadedMs: median(values.map((v) => v.allLoadedMs)),
      correct: Math.min(...values.map((v) => v.correct)),
    },
  };
}

/** The rows of the automerge-paper restart: ours and y-indexeddb, and each ÷ the bare apply. */
function restartMetrics(restart: Outcome<ClientRestartResult>): MetricRow[] {
  const pick = (f: (r: ClientRestartResult) => Cell): Partial<Record<PeerName, Cell>> =>
    restart.ok ? { scopesync: f(restart.value), 'y-websocket': f(restart.value), hocuspocus: 'n/a' } : {};
  if (!restart.ok) return [];
  return [
    {
      metric: 'automerge-paper reloaded from the local store (after restart)',
      unit: 'ms',
      better: 'lower',
      values: {
        scopesync: restart.value.oursMs,
        'y-websocket': restart.value.yIndexeddbMs,
        hocuspocus: 'n/a',
      },
    },
    {
      metric: 'bare Y.applyUpdate of the same state + tail (floor)',
      unit: 'ms',
      better: null,
      values: pick((r) => r.bareMs),
    },
    {
      metric: 'reload ÷ bare Y.applyUpdate',
      unit: '×',
      better: 'lower',
      values: {
        scopesync: restart.value.oursMs / restart.value.bareMs,
        'y-websocket': restart.value.yIndexeddbMs / restart.value.bareMs,
        hocuspocus: 'n/a',
      },
    },
    {
      metric: 'reloaded doc correct',
      unit: '',
      better: null,
      values: pick((r) => (r.correct ? 'pass' : 'FAIL')),
    },
  ];
}

/** Fills `kind`'s store in one fresh process, then reads it back in another (see the child). */
async function measureIn(
  kind: StoreKind,
  docs: number,
  updatesPerDoc: number,
): Promise<Outcome<ColdStartResult>> {
  const file = join(tmpdir(), `scopesync-cold-start-${process.pid}-${kind}.v8`);
  const args = (phase: 'fill' | 'read') => [kind, String(docs), String(updatesPerDoc), phase, file];
  try {
    const filled = await runChild<null>('./cold-start.child.ts', args('fill'), 120_000);
    if (!filled.ok) return filled;
    return await runChild<ColdStartResult>('./cold-start.child.ts', args('read'), 120_000);
  } finally {
    await rm(file, { force: true });
  }
}

/** Runs a child of this workload and resolves with the one Outcome it sends. */
function runChild<T>(module: string, args: string[], timeoutMs: number): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    const child = fork(new URL(module, import.meta.url), args, {
      execArgv: ['--conditions=source', '--import', 'tsx', '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let settled: Outcome<T> | null = null;
    const timer = setTimeout(() => {
      settled = { ok: false, error: `timed out after ${timeoutMs / 1000} s` };
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('message', (message: Outcome<T>) => {
      settled = message;
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(settled ?? { ok: false, error: `exited with ${code}` });
    });
  });
}
