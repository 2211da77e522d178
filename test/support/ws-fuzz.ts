import { parseDocName } from '@scopesync/core';
import { seededRandom, withSeed } from '@scopesync/testing';
import { expect } from 'vitest';
import type { FuzzBackend, FuzzRelay } from './fuzz-backend.ts';
import { brokenWebSocket, refusedUpgrades } from './ws-fuzz-connections.ts';
import { seedRelay, startRelay } from './ws-fuzz-fixture.ts';
import { runSession } from './ws-fuzz-session.ts';
import { DocProbe, type FuzzSocket, open } from './ws-fuzz-sockets.ts';
import { emptyStats, expectEveryPath, logStats } from './ws-fuzz-stats.ts';
import { expectStillServing } from './ws-fuzz-still-serving.ts';
import { expectOnlyPermittedChanges, readStored, served } from './ws-fuzz-stored.ts';

// Seeded fuzzing of the WebSocket endpoints of a real relay (on SQLite in fuzz-ws.test.ts, on
// both backends in the chaos suite): /sync/<doc>
// (y-websocket) and /sync (multiplexed). Random bytes, mutated valid frames and well-formed
// frames that must be refused, from a read-only user, a user without keys and a guest. After
// every frame a probe checks the socket: a malformed frame closes that socket alone with 4400
// and a reason (1009 past the frame limit), anything else leaves it open, and the relay never
// logs an internal error. At the end the relay still serves, and no stored byte of the
// documents the fuzzing callers may not write has changed.

/** Sessions run in this many lanes at once. */
const LANES = 2;
/** Sockets broken at the WebSocket layer (bad opcodes, unmasked frames…) after a successful upgrade. */
const BROKEN_SOCKETS = 100;

/** What one WebSocket fuzz run did. */
export interface WsFuzzStats {
  readonly frames: number;
  readonly brokenSockets: number;
}

/**
 * Sends `frames` seeded random, mutated and refused frames (plus {@link BROKEN_SOCKETS} sockets
 * broken at the WebSocket layer) to a fresh relay on `backend`, checking after every frame;
 * closes the relay. Fails (with the seed) on a check that does not hold. Call inside a test.
 */
export async function runWsFuzz(options: {
  readonly backend: FuzzBackend;
  readonly seed: number;
  readonly frames: number;
  /** Sockets broken at the WebSocket layer (default {@link BROKEN_SOCKETS}). */
  readonly brokenSockets?: number;
}): Promise<WsFuzzStats> {
  const brokenSockets = options.brokenSockets ?? BROKEN_SOCKETS;
  const FRAMES = options.frames;
  const seed = options.seed;
  let fuzzed: FuzzRelay | undefined;
  try {
    return await withSeed(`fuzz-ws (${options.backend})`, seed, async (r) => {
      const relayErrors: string[] = [];
      fuzzed = await startRelay(options.backend, relayErrors);
      const f = await seedRelay(r, fuzzed, relayErrors);
      const storedBefore = await readStored(f);
      const servedBefore = await served(f);
      for (const name of f.protectedDocs) {
        expect(storedBefore.digests[`object ${name}`], name).toMatch(/^1 rows/);
        expect(storedBefore.digests[`entries ${name}`], name).not.toMatch(/^0 rows/);
      }

      // A bystander on another document: its socket must outlive every fuzzing one.
      const bystander = (await open(`${f.relay.wsUrl}/sync/PUBLIC_RW/_/control`, false)) as FuzzSocket;
      const bystanderProbe = new DocProbe(bystander, 7);
      expect(await bystanderProbe.probe()).not.toBe('closed');

      const stats = emptyStats();
      const started = Date.now();
      // Lanes of sessions side by side, so sockets also race each other on shared documents.
      // Each lane has its own generator (seeded from this seed) and frame budget.
      let failed = false;
      const lanes = Array.from({ length: LANES }, () => r.int(0, 0xffff_ffff));
      const results = await Promise.allSettled(
        lanes.map(async (laneSeed, lane) => {
          const lr = seededRandom(laneSeed);
          try {
            for (let sent = 0; sent < FRAMES / LANES && !failed; ) {
              if (lr.int(0, 24) === 0) await refusedUpgrades(lr, f, stats);
              sent += await runSession(lr, f, stats, lane, FRAMES / LANES - sent);
            }
          } catch (error) {
            failed = true;
            throw error;
          }
        }),
      );
      for (const result of results) if (result.status === 'rejected') throw result.reason;
      for (let i = 0; i < brokenSockets; i++) await brokenWebSocket(r, f, stats);
      const elapsed = Date.now() - started;

      // Still serving: health, the bystander, stock clients on a fresh doc and on fuzzed ones.
      await expectStillServing(f, bystander, bystanderProbe);
      // Writers' frames took effect: the fuzz exercised the write path, not only refusals.
      if (FRAMES >= 10_000)
        expect(await f.relay.relay.hub.head(parseDocName('PUBLIC_RW/_/board').name)).toBeGreaterThan(10);

      // Nothing the fuzzing callers may not write changed, on disk or in memory.
      await expectOnlyPermittedChanges(f, storedBefore, servedBefore);
      expect((await f.relay.relay.runtime.verifyAudit()).ok).toBe(true);
      expect(relayErrors).toEqual([]);

      logStats(options.backend, seed, stats, elapsed);
      expectEveryPath(stats, FRAMES);
      return { frames: stats.frames, brokenSockets };
    });
  } finally {
    await fuzzed?.close();
  }
}
