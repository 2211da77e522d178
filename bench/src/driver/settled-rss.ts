import type { Peer } from '../servers/peer.ts';
import { now, sleep } from './time.ts';

/** A server's RSS once it stopped falling, and how long the wait was (including the 10 s that confirmed it). */
export interface SettledRss {
  readonly bytes: number;
  /** From the first reading to the one returned, in ms. */
  readonly afterMs: number;
  /** False when the readings still moved at the bound: `bytes` is then the last one. */
  readonly settled: boolean;
}

const INTERVAL_MS = 2_000;
/** Readings in a row that must agree: 6 at 2 s span 10 s, more than V8's 8 s memory-reducer delay. */
const READINGS = 6;
const SPAN_BYTES = 2 ** 20;
const MAX_MS = 60_000;

/**
 * Reads a server's RSS (after a full GC, as {@link Peer.rss} does) every 2 s until the readings
 * of the last 10 s lie within 1 MiB, at most 60 s. V8 gives back the young generation it grew
 * under load only once its memory reducer finds the process idle, some seconds after the load
 * ended and at a time of each server's own: one reading 3 s after the last document left
 * memory read 142 MiB for our relay, 168 for y-websocket and 106 for Hocuspocus, and 20 s later
 * 76, 75 and 69 (2026-12-05, 10,000 documents); 1,000 idle sockets read 5–13 KiB a connection
 * more a second after they opened than settled. What an evicted document or an idle socket
 * costs is the settled figure. `log` hears of a reading that had not settled by the bound.
 */
export async function settledRss(
  peer: Peer,
  log?: (message: string) => void,
  maxMs = MAX_MS,
): Promise<SettledRss> {
  const started = now();
  const readings = [await peer.rss()];
  for (;;) {
    const recent = readings.slice(-READINGS);
    const settled = recent.length === READINGS && Math.max(...recent) - Math.min(...recent) <= SPAN_BYTES;
    if (settled || now() - started >= maxMs) {
      const afterMs = now() - started;
      if (!settled)
        log?.(`${peer.name}'s RSS still moved after ${Math.round(afterMs)} ms; the last reading stands`);
      return { bytes: readings[readings.length - 1] as number, afterMs, settled };
    }
    await sleep(INTERVAL_MS);
    readings.push(await peer.rss());
  }
}
