import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// A throwaway PostgreSQL server of one chaos run, so the engines scenario can stop the store
// itself (`pg_ctl stop`, fast or immediate — a crash) without touching the machine's shared
// server. It lives in a temp dir (data, log and unix socket), listens on a free loopback port
// with trust auth and fsync on, and is removed when the run ends: by `destroy()`, by an exit
// hook, and — should the test process die by a signal — by a detached guardian that waits for
// that process to go and then stops the server and removes the dir.

/** How a stop ends the server: `fast` (clean shutdown) or `immediate` (no checkpoint: a crash, recovery at start). */
export type StopMode = 'fast' | 'immediate';

/** A private PostgreSQL server. */
export interface PrivatePostgres {
  /** `postgres://root@127.0.0.1:<port>/postgres`. */
  readonly url: string;
  readonly port: number;
  /** False from a stop until the next start completed. */
  readonly up: boolean;
  /** Runs `fn` with no stop or start of the server meanwhile (relay starts take it). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Stops the server (`pg_ctl stop -m <mode>`), runs `during` while it is down (for at least
   * `ms`), starts it again; exclusive. Resolves with what `during` resolved with.
   */
  outage<T>(mode: StopMode, ms: number, during: () => Promise<T>): Promise<T>;
  /** Stops the server for good and removes its dir. Idempotent. */
  destroy(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The bin dir of the newest installed PostgreSQL (Debian layout), or null. */
function binDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? null : join(root, versions[0], 'bin');
}

/** A TCP port free on 127.0.0.1 right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Who runs the server: initdb refuses root, so as root it is the `postgres` user. */
function runAs(): { prefix: string[]; uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return { prefix: [], uid: -1, gid: -1 };
  const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (id.status !== 0 || gid.status !== 0) return null;
  return {
    prefix: ['runuser', '-u', 'postgres', '--'],
    uid: Number(id.stdout.trim()),
    gid: Number(gid.stdout.trim()),
  };
}

function run(argv: readonly string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(argv[0] as string, argv.slice(1), { cwd, timeout: 120_000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${argv.join(' ')}: ${String(stderr).trim() || error.message}`));
      else resolve();
    });
  });
}

/**
 * Creates and starts a private server, or resolves with why it cannot (no PostgreSQL binaries,
 * no `postgres` user to run them as root, initdb or start failed): the caller skips only the
 * faults that need it and says so.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres | string> {
  const bin = binDir();
  if (bin === null) return 'no PostgreSQL binaries under /usr/lib/postgresql/*/bin';
  const user = runAs();
  if (user === null) return 'running as root and there is no `postgres` user to run initdb as';
  const dir = mkdtempSync(join(tmpdir(), 'scopesync-chaos-pg-'));
  if (user.uid >= 0) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  const pgCtl = [...user.prefix, join(bin, 'pg_ctl')];
  const port = await freePort();
  // Only this run connects: room for every relay's two pools, replacements and CLI runs.
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200 -c shared_buffers=32MB`;
  const start = () =>
    run(
      [...pgCtl, 'start', '-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '120', '-o', serverOptions],
      dir,
    ).catch((error: unknown) => {
      // pg_ctl's own message rarely says why: the server's log does.
      const log = existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8') : '';
      throw new Error(`${String(error)}\nserver.log: ${log.slice(-1500)}`);
    });
  const running = () =>
    run([...pgCtl, 'status', '-D', data], dir).then(
      () => true,
      () => false,
    );
  const stop = (mode: StopMode) => run([...pgCtl, 'stop', '-D', data, '-m', mode, '-w', '-t', '120'], dir);
  const stopNow = (): void => {
    spawnSync(pgCtl[0] as string, [...pgCtl.slice(1), 'stop', '-D', data, '-m', 'immediate'], {
      cwd: dir,
      stdio: 'ignore',
      timeout: 30_000,
    });
    rmSync(dir, { recursive: true, force: true });
  };
  // The guardian: outside our process group (a ^C does not reach it), it outlives us.
  const guardian: ChildProcess = spawn(
    'sh',
    [
      '-c',
      `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
        `${pgCtl.join(' ')} stop -D '${data}' -m immediate >/dev/null 2>&1; rm -rf '${dir}'`,
    ],
    { detached: true, stdio: 'ignore', cwd: tmpdir() },
  );
  guardian.unref();
  const onExit = (): void => stopNow();
  process.once('exit', onExit);
  let destroyed: Promise<void> | null = null;
  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      process.off('exit', onExit);
      await stop('immediate').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      guardian.kill('SIGTERM');
    })();
    return destroyed;
  };
  try {
    await run(
      [
        ...user.prefix,
        join(bin, 'initdb'),
        '-D',
        data,
        '-U',
        'root',
        '--auth=trust',
        '-E',
        'UTF8',
        '--no-sync',
      ],
      dir,
    );
    await start();
  } catch (error) {
    await destroy();
    return `the private server did not start: ${error instanceof Error ? error.message : String(error)}`;
  }
  let up = true;
  let lock: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const turn = lock.then(fn, fn);
    lock = turn.catch(() => undefined);
    return turn;
  };
  return {
    url: `postgres://root@127.0.0.1:${port}/postgres`,
    port,
    get up() {
      return up;
    },
    exclusive,
    outage: (mode, ms, during) =>
      exclusive(async () => {
        up = false;
        try {
          await stop(mode).catch((error: unknown) => {
            throw new Error(`stopping the private PostgreSQL (${mode}) failed: ${String(error)}`);
          });
          const [seen] = await Promise.all([during(), sleep(ms)]);
          return seen;
        } finally {
          // Started again whatever happened: the rest of the run needs its store. A server
          // whose stop failed may still run: then there is nothing to start.
          if (!(await running())) await start();
          up = true;
        }
      }),
    destroy,
  };
}
