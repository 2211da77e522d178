import { expect } from 'vitest';
import type { FuzzBackend } from './fuzz-backend.ts';

// What a WebSocket fuzz run counts: frames by endpoint and kind, closes by code, refusals,
// acks, broken sockets. Printed at the end, and checked against floors that show every path was
// reached.

/** What a run did, counted as it goes. */
export interface Stats {
  frames: number;
  docFrames: number;
  muxFrames: number;
  sessions: number;
  upgradesRefused: number;
  readonly kinds: Map<string, number>;
  readonly closes: Map<number, number>;
  refusalsAnswered: number;
  permissionDenied: number;
  acks: number;
  /** Bob's sockets on his own document closed with 4403 after he hid it from himself (read 0). */
  hiddenFromOwner: number;
  readonly broken: Map<string, number>;
}

/** Adds one to `key`'s count. */
export function bump(map: Map<string | number, number>, key: string | number): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** Counters at zero, for a new run. */
export function emptyStats(): Stats {
  return {
    frames: 0,
    docFrames: 0,
    muxFrames: 0,
    sessions: 0,
    upgradesRefused: 0,
    kinds: new Map(),
    closes: new Map(),
    refusalsAnswered: 0,
    permissionDenied: 0,
    acks: 0,
    hiddenFromOwner: 0,
    broken: new Map(),
  };
}

/** Prints what the run on `backend` with `seed` did in `elapsed` ms. */
export function logStats(backend: FuzzBackend, seed: number, stats: Stats, elapsed: number): void {
  console.log(
    `fuzz-ws (${backend}) seed ${seed}: ${stats.frames} frames (${stats.docFrames} /sync/<doc>, ${stats.muxFrames} /sync) ` +
      `in ${stats.sessions} sessions, ${elapsed} ms; kinds ${JSON.stringify(Object.fromEntries(stats.kinds))}; ` +
      `closes ${JSON.stringify(Object.fromEntries(stats.closes))}; refusals answered ${stats.refusalsAnswered}, ` +
      `permission-denied ${stats.permissionDenied}, acks ${stats.acks}, upgrades refused ${stats.upgradesRefused}, ` +
      `own document hidden from its owner ${stats.hiddenFromOwner}, ` +
      `broken sockets ${JSON.stringify(Object.fromEntries(stats.broken))}`,
  );
}

/** Expects a run of `frames` frames to have reached every path (the floors apply from 10,000 frames). */
export function expectEveryPath(stats: Stats, frames: number): void {
  // The fuzz reached every path, not only the first reader check (floors set for 10,000
  // frames; a short run, like the chaos suite's in `npm test`, checks only the rest).
  const count = (k: string) => stats.kinds.get(k) ?? 0;
  expect(stats.frames).toBeGreaterThanOrEqual(frames);
  if (frames >= 10_000) {
    expect(stats.docFrames).toBeGreaterThan(frames / 4);
    expect(stats.muxFrames).toBeGreaterThan(frames / 4);
    expect(stats.closes.get(4400) ?? 0).toBeGreaterThan(500);
    expect(stats.closes.get(1009) ?? 0).toBeGreaterThan(10);
    expect(stats.refusalsAnswered).toBeGreaterThan(300);
    expect(stats.permissionDenied).toBeGreaterThan(20);
    expect(stats.acks).toBeGreaterThan(5);
    expect(stats.upgradesRefused).toBeGreaterThan(20);
    expect(count('valid') + count('mutated')).toBeGreaterThan(frames / 2);
  }
}
