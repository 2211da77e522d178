import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as Y from 'yjs';
import { TRACES_DIR } from '../paths.ts';

/** [position, numDeleted, insertedText] — positions in Unicode code points. */
type Patch = readonly [number, number, string];

interface SequentialTrace {
  readonly endContent: string;
  readonly txns: ReadonlyArray<{ readonly patches: readonly Patch[] }>;
}

interface ConcurrentTrace {
  readonly kind: 'concurrent';
  readonly endContent: string;
  readonly numAgents: number;
  readonly txns: ReadonlyArray<{
    readonly parents: readonly number[];
    readonly agent: number;
    readonly patches: readonly Patch[];
  }>;
}

/** The path of a shared trace, or null when the traces are not beside the checkout. */
export function tracePath(name: string): string | null {
  const path = join(TRACES_DIR, `${name}.json.gz`);
  return existsSync(path) ? path : null;
}

function load<T>(path: string): T {
  return JSON.parse(gunzipSync(readFileSync(path)).toString('utf8')) as T;
}

function hasAstral(s: string): boolean {
  return /[\u{10000}-\u{10FFFF}]/u.test(s);
}

function applyPatches(text: Y.Text, patches: readonly Patch[]): void {
  for (const [pos, deleted, inserted] of patches) {
    // Y.Text counts UTF-16 units; traces count code points. Equal for the BMP text these
    // traces hold (checked when loading), so positions are used as they are.
    if (deleted > 0) text.delete(pos, deleted);
    if (inserted.length > 0) text.insert(pos, inserted);
  }
}

/** A sequential trace turned into one Yjs update per transaction (keystroke). */
export interface SequentialReplay {
  readonly updates: Uint8Array[];
  readonly writerId: number;
  /** Writer's clock after the last update: a replica holding it has everything. */
  readonly finalClock: number;
  readonly expectedText: string;
  /** True when the whole trace was used and the result equals its endContent. */
  readonly matchesEndContent: boolean;
  /** Y.encodeStateAsUpdate(final doc).byteLength. */
  readonly encodedBytes: number;
  /** Y.encodeStateAsUpdate of the doc before its last `tailUpdates` updates (see {@link prepareSequential}). */
  readonly headState: Uint8Array;
  /** How many of `updates` `headState` holds; the rest are its tail. */
  readonly headUpdates: number;
  readonly totalOps: number;
}

/** Replays the first `limit` transactions of a sequential trace locally (all when null). */
export function prepareSequential(path: string, limit: number | null, tailUpdates = 0): SequentialReplay {
  const trace = load<SequentialTrace>(path);
  const txns = limit === null ? trace.txns : trace.txns.slice(0, limit);
  if (txns.some((t) => t.patches.some((p) => hasAstral(p[2])))) {
    throw new Error('trace inserts characters outside the BMP; positions would need code point mapping');
  }
  const doc = new Y.Doc();
  doc.clientID = 1;
  const text = doc.getText('text');
  const updates: Uint8Array[] = [];
  doc.on('update', (update: Uint8Array) => updates.push(update));
  let headState: Uint8Array = new Uint8Array();
  let headUpdates = 0;
  txns.forEach((txn, i) => {
    if (i === txns.length - tailUpdates) {
      headState = Y.encodeStateAsUpdate(doc);
      headUpdates = updates.length;
    }
    doc.transact(() => applyPatches(text, txn.patches));
  });
  if (tailUpdates === 0) {
    headState = Y.encodeStateAsUpdate(doc);
    headUpdates = updates.length;
  }
  const expectedText = text.toString();
  return {
    updates,
    writerId: doc.clientID,
    finalClock: Y.getState(doc.store, doc.clientID),
    expectedText,
    matchesEndContent: txns.length === trace.txns.length && expectedText === trace.endContent,
    encodedBytes: Y.encodeStateAsUpdate(doc).byteLength,
    headState,
    headUpdates,
    totalOps: trace.txns.reduce((n, t) => n + t.patches.length, 0),
  };
}

/** One agent's update and what it must have seen from the other agent first. */
export interface AgentUpdate {
  readonly update: Uint8Array;
  /** The other agent's clock this update was made on top of (0 = nothing needed). */
  readonly needsOtherClock: number;
}

/** A two-agent concurrent trace, as each agent's updates in order. */
export interface ConcurrentReplay {
  readonly agents: readonly [AgentUpdate[], AgentUpdate[]];
  readonly clientIds: readonly [number, number];
  readonly finalClocks: readonly [number, number];
  readonly endContent: string;
  /** True when merging every update locally gives endContent (checks the preparation itself). */
  readonly localMergeMatches: boolean;
}

/**
 * Prepares a two-agent concurrent trace. Each agent's transactions form a chain (each
 * has the agent's previous one in its history — checked), so the state before an agent's
 * transaction is its own earlier edits plus a prefix of the other agent's: the agent's
 * doc gets exactly that prefix applied before the patches are made.
 */
export function prepareConcurrent(path: string): ConcurrentReplay {
  const trace = load<ConcurrentTrace>(path);
  if (trace.kind !== 'concurrent' || trace.numAgents !== 2)
    throw new Error('expected a two-agent concurrent trace');
  const clientIds = [1, 2] as const;
  const docs = clientIds.map((id) => {
    const doc = new Y.Doc();
    doc.clientID = id;
    return doc;
  });
  const produced: [Array<AgentUpdate & { txn: number }>, Array<AgentUpdate & { txn: number }>] = [[], []];
  const appliedFromOther = [0, 0];
  // versions[t][a] = highest txn of agent a in the history of txn t (-1 = none).
  const versions: Array<[number, number]> = [];
  const lastOwn = [-1, -1];
  trace.txns.forEach((txn, t) => {
    const version: [number, number] = [-1, -1];
    for (const p of txn.parents) {
      const pv = versions[p]!;
      const pa = trace.txns[p]!.agent as 0 | 1;
      version[0] = Math.max(version[0], pv[0]);
      version[1] = Math.max(version[1], pv[1]);
      version[pa] = Math.max(version[pa], p);
    }
    versions.push(version);
    const a = txn.agent as 0 | 1;
    const b = (1 - a) as 0 | 1;
    if (version[a] !== lastOwn[a]) throw new Error(`txn ${t}: agent ${a}'s edits are not a chain`);
    lastOwn[a] = t;
    const doc = docs[a]!;
    const other = produced[b];
    while (appliedFromOther[a]! < other.length && other[appliedFromOther[a]!]!.txn <= version[b]) {
      Y.applyUpdate(doc, other[appliedFromOther[a]!]!.update, 'other');
      appliedFromOther[a]!++;
    }
    const needsOtherClock = Y.getState(doc.store, clientIds[b]);
    let update: Uint8Array | null = null;
    const capture = (u: Uint8Array, origin: unknown): void => {
      if (origin === 'own') update = u;
    };
    doc.on('update', capture);
    doc.transact(() => applyPatches(doc.getText('text'), txn.patches), 'own');
    doc.off('update', capture);
    if (update !== null) produced[a].push({ update, needsOtherClock, txn: t });
  });
  // Merge in trace order (dependencies first) to check the preparation.
  const check = new Y.Doc();
  const order = [...produced[0], ...produced[1]].sort((x, y) => x.txn - y.txn);
  for (const item of order) Y.applyUpdate(check, item.update);
  const strip = (list: Array<AgentUpdate & { txn: number }>): AgentUpdate[] =>
    list.map(({ update, needsOtherClock }) => ({ update, needsOtherClock }));
  const final = clientIds.map((id) => Y.getState(check.store, id));
  return {
    agents: [strip(produced[0]), strip(produced[1])],
    clientIds,
    finalClocks: [final[0]!, final[1]!],
    endContent: trace.endContent,
    localMergeMatches: check.getText('text').toString() === trace.endContent,
  };
}
