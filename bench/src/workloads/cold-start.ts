import { fork } from 'node:child_process';
import { median } from '../driver/stats.ts';
import { ERROR_CELL, type Outcome, type Workload } from '../driver/workload.ts';
import type { Cell } from '../report.ts';
import type { PeerName } from '../servers/peer.ts';
import type { ColdStartResult, StoreKind } from './cold-start.child.ts';

/**
 * Workload 5: a client with `docs` documents in its local IndexedDB store (fake-indexeddb)
 * starts cold: time to the first document read and to all loaded. Ours (IndexedDbDocStore)
 * against y-indexeddb on the same documents. Each store is filled and measured in its own
 * fresh process, so neither inherits the other's heap.
 */
export const coldStart: Workload = {
  id: 'cold-start',
  title: '5. Client cold start',
  async run(ctx) {
    const { docs, updatesPerDoc, rounds } = ctx.config.coldStart;
    // Fresh processes in turn (ours, theirs, ours, …) so drift on the machine hits both alike.
    const runs: Record<StoreKind, Array<Outcome<ColdStartResult>>> = { scopesync: [], 'y-indexeddb': [] };
    for (let round = 0; round < rounds; round++) {
      for (const kind of ['scopesync', 'y-indexeddb'] as const)
        runs[kind].push(await measureIn(kind, docs, updatesPerDoc));
    }
    const ours = combine(runs.scopesync);
    const theirs = combine(runs['y-indexeddb']);
    for (const [label, outcome] of [
      ['scopesync', ours],
      ['y-indexeddb', theirs],
    ] as const) {
      ctx.log(`cold start: ${label} ${outcome.ok ? 'done' : `failed: ${outcome.error}`}`);
      if (!outcome.ok) ctx.fail(`${label} failed in cold start: ${outcome.error}`);
    }
    const cells = (pick: (r: ColdStartResult) => Cell): Partial<Record<PeerName, Cell>> => ({
      scopesync: ours.ok ? pick(ours.value) : ERROR_CELL,
      'y-websocket': theirs.ok ? pick(theirs.value) : ERROR_CELL,
      hocuspocus: 'n/a',
    });
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
      ],
      notes: [
        `${docs.toLocaleString('en-US')} documents of ${updatesPerDoc} small text updates each, written through each store and the store closed; then, in the same process, the store is reopened and every document read into a Y.Doc. Each store is measured in ${rounds} fresh processes, taken in turn with the other's; the figures are medians (the least-correct run for the count). Both on fake-indexeddb in Node. Ours: IndexedDbDocStore from @scopesync/client; peer: y-indexeddb (IndexeddbPersistence, one database per document), the store the y-websocket and Hocuspocus providers use for offline data — its figures sit in the y-websocket column; the Hocuspocus column is n/a rather than a copy.`,
        'Documents load 32 at a time after the first; each text is compared with what was written.',
      ],
      details: runs,
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

function measureIn(kind: StoreKind, docs: number, updatesPerDoc: number): Promise<Outcome<ColdStartResult>> {
  return new Promise((resolve) => {
    const child = fork(
      new URL('./cold-start.child.ts', import.meta.url),
      [kind, String(docs), String(updatesPerDoc)],
      {
        execArgv: ['--conditions=source', '--import', 'tsx', '--expose-gc'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    let settled: Outcome<ColdStartResult> | null = null;
    const timer = setTimeout(() => {
      settled = { ok: false, error: 'timed out after 120 s' };
      child.kill('SIGKILL');
    }, 120_000);
    child.on('message', (message: Outcome<ColdStartResult>) => {
      settled = message;
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(settled ?? { ok: false, error: `exited with ${code}` });
    });
  });
}
