import { writeFileSync } from 'node:fs';
import { replaySeed, seeds } from '@scopesync/testing';
import { describe, expect, it } from 'vitest';
import { type ChaosSize, FULL, SHORT, soakPlan } from './chaos/chaos-plan.ts';
import { runSoak, type SoakReport } from './chaos/soak.ts';
import type { FuzzBackend } from './support/fuzz-backend.ts';
import { runHttpFuzz } from './support/http-fuzz.ts';
import { runWsFuzz } from './support/ws-fuzz.ts';

// The chaos suite (docs/reliability.md). In `npm test` it runs short: a few seconds of every
// scenario with a dozen clients. `npm run chaos` runs it full size (SCOPESYNC_CHAOS=full, sizes
// from chaos/run.ts's flags). Every run prints its seed; SCOPESYNC_SEED=<seed> replays the same
// choices (which client edits, goes offline or crashes, which relay dies, which fault comes
// next; the interleaving with real time is the machine's).
//
// Needs PostgreSQL 15 and Redis 7 on 127.0.0.1 (like cluster-relays.test.ts); the engine faults
// hit only this run's own connections.

const full = process.env.SCOPESYNC_CHAOS === 'full';
const fromEnv = (name: string, fallback: number): number => {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? fallback : Number(raw);
};
const base = full ? FULL : SHORT;
const seed = replaySeed() ?? (full ? Math.floor(Math.random() * 0xffff_ffff) : (seeds(1)[0] as number));
const size: ChaosSize = {
  seed,
  durationMs: fromEnv('SCOPESYNC_CHAOS_DURATION_MS', base.durationMs),
  clients: fromEnv('SCOPESYNC_CHAOS_CLIENTS', base.clients),
  writesPerSecond: fromEnv('SCOPESYNC_CHAOS_WRITES_PER_SECOND', base.writesPerSecond),
  killEveryMs: fromEnv('SCOPESYNC_CHAOS_KILL_EVERY_MS', base.killEveryMs),
  crashes: fromEnv('SCOPESYNC_CHAOS_CRASHES', base.crashes),
  fuzzCases: fromEnv('SCOPESYNC_CHAOS_FUZZ_CASES', base.fuzzCases),
  pingIntervalMs: process.env.SCOPESYNC_CHAOS_PING_INTERVAL_MS
    ? fromEnv('SCOPESYNC_CHAOS_PING_INTERVAL_MS', 0)
    : undefined,
  // 0: do not stop PostgreSQL (a private server of the run's own); 1 or unset: stop it.
  postgresStop: process.env.SCOPESYNC_CHAOS_POSTGRES_STOP
    ? process.env.SCOPESYNC_CHAOS_POSTGRES_STOP === '1'
    : undefined,
};
const reportPath = process.env.SCOPESYNC_CHAOS_REPORT;
const results: Record<string, unknown> = { size };
const log = (line: string): void => {
  if (full || line.includes('missing') || line.includes('gave up')) console.log(`[chaos] ${line}`);
};
console.log(`chaos (${full ? 'full' : 'short'}): seed ${seed}; replay with SCOPESYNC_SEED=${seed}`);

function record(key: string, value: unknown): void {
  results[key] = value;
  if (reportPath) writeFileSync(reportPath, `${JSON.stringify(results, null, 2)}\n`);
}

describe(`chaos (seed ${seed})`, () => {
  it(
    `soak: ${size.clients} clients over 3 relays on PostgreSQL + Redis and 1 on SQLite, with kills, engine faults, a faulty network, client and browser crashes, and permission and level churn`,
    async () => {
      const report: SoakReport = await runSoak(soakPlan(size, log));
      record('soak', report);
      console.log(
        `chaos soak seed ${seed}: ${report.writes} writes, ${report.acked} acked, ${report.lost.length} lost, ${report.unread.length} unread; ` +
          `converged ${report.converged}/${report.pairs}; kills ${report.kills}; engine faults ${JSON.stringify(report.engineFaults)}` +
          `${report.privatePostgres ? ` (${report.outageRefusals} writes refused while PostgreSQL was stopped)` : ' (PostgreSQL not stopped in this run)'}; ` +
          `proxy ${JSON.stringify(report.proxy)}; ${JSON.stringify(report.addons)}`,
      );
      // What a user would notice: nothing acknowledged is lost, everyone sees the same document,
      // no one received what they may not read, a crashed client's edits arrive once.
      expect(report.lost).toEqual([]);
      expect(report.unread).toEqual([]);
      expect(report.divergent).toEqual([]);
      expect(report.converged).toBe(report.pairs);
      expect(report.violations).toEqual([]);
      expect(report.proxy.halfOpenMissed).toBe(0);
      // The chaos happened (a run that injected nothing proves nothing).
      expect(report.acked).toBeGreaterThan(0);
      expect(report.kills).toBeGreaterThanOrEqual(1);
      expect(Object.values(report.engineFaults).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
      // PostgreSQL itself stopped (the first engine fault) unless its private server could not be made (said on stderr).
      if (report.privatePostgres) {
        expect(report.engineFaults['postgres-stopped']).toBeGreaterThanOrEqual(1);
        expect(report.outageRefusals).toBeGreaterThanOrEqual(1);
      }
      expect(report.proxy.cuts).toBeGreaterThanOrEqual(1);
      expect(report.addons['client-crash']?.crashes).toBeGreaterThanOrEqual(1);
      expect(report.addons.permissions?.revocations).toBeGreaterThanOrEqual(1);
      expect(report.addons.levels?.levelChanges).toBeGreaterThanOrEqual(1);
      // Skipped (with a message in the log) only where /usr/bin/chromium is missing.
      if (report.addons['browser-crash']?.skipped !== 1)
        expect(report.addons['browser-crash']?.crashes).toBeGreaterThanOrEqual(1);
    },
    size.durationMs + 15 * 60_000,
  );

  const backends: FuzzBackend[] = ['sqlite', 'postgres'];
  for (const backend of backends) {
    // Four in five cases are WebSocket frames, the rest HTTP requests (slower: one store read each).
    const frames = full ? Math.round(size.fuzzCases * 0.8) : 300;
    const requests = full ? size.fuzzCases - frames : 100;
    it(
      `fuzz: ${frames} frames and ${requests} HTTP requests against a relay on ${backend}, protected data byte-identical`,
      async () => {
        const ws = await runWsFuzz({ backend, seed, frames, brokenSockets: full ? 100 : 20 });
        const http = await runHttpFuzz({ backend, seed, requests, rawGarbage: full ? 200 : 20 });
        record(`fuzz-${backend}`, {
          frames: ws.frames,
          brokenSockets: ws.brokenSockets,
          requests: http.requests,
          rawGarbage: http.rawGarbage,
          statuses: Object.fromEntries(http.statuses),
        });
      },
      full ? 4 * 60 * 60_000 : 120_000,
    );
  }
});
