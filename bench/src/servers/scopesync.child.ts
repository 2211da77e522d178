/**
 * Child process: our relay from `createRelay` with a data dir and nothing else — auth, ACL
 * checks, audit, rate limits and its durable SQLite store (`relay.sqlite` + `docs.sqlite`)
 * all at their defaults, as the CLI runs it minus the example mod and the web app (or, for
 * `--relay-store=memory`, the same relay on its in-memory stores).
 */
import { createRelay } from '@scopesync/relay';
import { runChild } from './child-runtime.ts';

runChild(async () => {
  const dataDir = process.env.BENCH_RELAY_DATA_DIR;
  if (!dataDir) throw new Error('BENCH_RELAY_DATA_DIR is not set');
  // Only the many-documents workload shortens the idle eviction (default 30 s).
  const idleMs = process.env.BENCH_RELAY_DOC_IDLE_MS;
  // Only the trace replays raise the frame rate limits (one socket sends ~20,000 keystrokes/s).
  const framesPerSecond = process.env.BENCH_RELAY_MAX_FRAMES_PER_SECOND;
  // A/B runs of the SQLite page caches, `relay,docs` in KiB (either may be empty); unset: the relay's defaults.
  const [relayCacheKiB, docsCacheKiB] = (process.env.BENCH_RELAY_SQLITE_CACHE_KIB ?? '').split(',');
  const relay = createRelay({
    // Only `--relay-store=memory` runs the relay without its files: a diagnostic, never a row of record.
    ...(process.env.BENCH_RELAY_MEMORY_STORES === '1' ? {} : { dataDir }),
    port: 0,
    host: '127.0.0.1',
    ...(idleMs ? { docs: { idleMs: Number(idleMs) } } : {}),
    sqliteCacheKiB: {
      ...(relayCacheKiB ? { relay: Number(relayCacheKiB) } : {}),
      ...(docsCacheKiB ? { docs: Number(docsCacheKiB) } : {}),
    },
    ...(framesPerSecond
      ? {
          limits: {
            sync: {
              maxFramesPerSecond: Number(framesPerSecond),
              maxCallerFramesPerSecond: Number(framesPerSecond),
            },
          },
        }
      : {}),
  });
  const { port } = await relay.listen();
  return { port, close: () => relay.close() };
});
