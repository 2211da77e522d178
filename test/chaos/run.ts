/**
 * `npm run chaos`: the chaos suite at full size (docs/reliability.md). Flags:
 *   --minutes N | --seconds N   how long the soak's chaos phase runs (default 10 minutes)
 *   --clients N                 simulated clients (default 1000)
 *   --writes-per-second N       edits per second over all clients (default 100)
 *   --kill-every-seconds N      kill -9 of a random relay this often (default 20)
 *   --crashes N                 SIGKILLs of the crash client per backend (default 10)
 *   --fuzz-cases N              WebSocket frames + HTTP requests per backend (default 50000)
 *   --ping-interval-seconds N   the relays' heartbeat (default 5; a socket silent past ~2 of them is dropped)
 *   --postgres-stop 0|1         stop the cluster's private PostgreSQL in the engines scenario (default 1)
 *   --seed N                    replay a run (same as SCOPESYNC_SEED=N)
 *   --report FILE               where to write the figures as JSON (default chaos-report.json)
 * It runs test/chaos.test.ts under Vitest with SCOPESYNC_CHAOS=full and exits with its code.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

const FLAGS: Record<string, { env: string; scale: number }> = {
  minutes: { env: 'SCOPESYNC_CHAOS_DURATION_MS', scale: 60_000 },
  seconds: { env: 'SCOPESYNC_CHAOS_DURATION_MS', scale: 1000 },
  clients: { env: 'SCOPESYNC_CHAOS_CLIENTS', scale: 1 },
  'writes-per-second': { env: 'SCOPESYNC_CHAOS_WRITES_PER_SECOND', scale: 1 },
  'kill-every-seconds': { env: 'SCOPESYNC_CHAOS_KILL_EVERY_MS', scale: 1000 },
  crashes: { env: 'SCOPESYNC_CHAOS_CRASHES', scale: 1 },
  'fuzz-cases': { env: 'SCOPESYNC_CHAOS_FUZZ_CASES', scale: 1 },
  'ping-interval-seconds': { env: 'SCOPESYNC_CHAOS_PING_INTERVAL_MS', scale: 1000 },
  seed: { env: 'SCOPESYNC_SEED', scale: 1 },
  'postgres-stop': { env: 'SCOPESYNC_CHAOS_POSTGRES_STOP', scale: 1 },
};

const env: Record<string, string> = { SCOPESYNC_CHAOS: 'full' };
let report = 'chaos-report.json';
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const name = args[i]?.replace(/^--/, '') ?? '';
  const value = args[i + 1];
  if (name === 'help' || name === 'h') {
    console.log('usage: npm run chaos -- [--minutes N] [--clients N] [--seed N] … (see test/chaos/run.ts)');
    process.exit(0);
  }
  if (value === undefined) {
    console.error(`--${name} needs a value`);
    process.exit(2);
  }
  i += 1;
  if (name === 'report') {
    report = value;
    continue;
  }
  const flag = FLAGS[name];
  const n = Number(value);
  if (!flag || !Number.isFinite(n) || n < 0) {
    console.error(`unknown flag or bad value: --${name} ${value}`);
    process.exit(2);
  }
  env[flag.env] = String(Math.round(n * flag.scale));
}
env.SCOPESYNC_CHAOS_REPORT = resolve(process.cwd(), report);

const testDir = resolve(import.meta.dirname, '..');
const child = spawn(
  process.execPath,
  [
    resolve(testDir, '../node_modules/vitest/vitest.mjs'),
    'run',
    '--config',
    '../vitest.config.ts',
    'chaos.test.ts',
    '--reporter=verbose',
  ],
  { cwd: testDir, env: { ...process.env, ...env }, stdio: 'inherit' },
);
child.on('exit', (code, signal) => {
  console.log(`chaos: figures in ${env.SCOPESYNC_CHAOS_REPORT}`);
  process.exit(code ?? (signal ? 1 : 0));
});
