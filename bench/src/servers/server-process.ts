import { type ChildProcess, fork } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { compiledChild } from './compiled-child.ts';
import type { ChildMessage, ParentRequest, ServerStats } from './ipc.ts';

/** Options for one server child. */
export interface ServerProcessOptions {
  /** The child's entry module (a `*.child.ts` beside this file). */
  readonly entry: URL;
  readonly env?: Readonly<Record<string, string>>;
  /** Where the child's stdout/stderr go. */
  readonly logFile: string;
  readonly startTimeoutMs?: number;
}

/** The last few hundred characters of a log file, on one line. */
async function logTail(path: string): Promise<string> {
  // Let the piped output reach the file first.
  await new Promise((resolve) => setTimeout(resolve, 100));
  try {
    const text = (await readFile(path, 'utf8')).trim().replace(/\s+/g, ' ');
    return text.length > 400 ? `…${text.slice(-400)}` : text || '(no output)';
  } catch {
    return '(no log)';
  }
}

/** Extra Node flags for server children, from BENCH_CHILD_NODE_ARGS (space-separated). */
function childNodeArgs(): string[] {
  return (process.env.BENCH_CHILD_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
}

/**
 * Whether the children write a profile when they exit (`--cpu-prof`, `--heap-prof`, `--prof`):
 * a SIGKILLed child writes none, so such children are closed gracefully even where a workload
 * would kill them.
 */
const CHILDREN_PROFILE = childNodeArgs().some((a) => /^--(cpu-prof|heap-prof|prof)$/.test(a));

/** Linux's USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on every architecture Node runs on). */
const CLOCK_TICKS_PER_SECOND = 100;

const live = new Set<ChildProcess>();
process.on('exit', () => {
  // Only the children this process started, by their own handle.
  for (const child of live) child.kill('SIGKILL');
});

/**
 * A server running in its own Node process, so its RSS is its own and it does not share an
 * event loop with the load generator. Talks to the child over the fork IPC channel.
 */
export class ServerProcess {
  readonly #child: ChildProcess;
  readonly port: number;
  #nextId = 1;
  readonly #pending = new Map<number, (value: number | ServerStats | null) => void>();
  #closed: Promise<void> | null = null;

  private constructor(child: ChildProcess, port: number) {
    this.#child = child;
    this.port = port;
    child.on('message', (message: ChildMessage) => {
      if (message.type !== 'reply') return;
      this.#pending.get(message.id)?.(message.value);
      this.#pending.delete(message.id);
    });
    child.on('exit', () => {
      live.delete(child);
      for (const resolve of this.#pending.values()) resolve(null);
      this.#pending.clear();
    });
  }

  /** Forks the child and resolves once its server listens, or rejects with the reason it gave. */
  static async start(options: ServerProcessOptions): Promise<ServerProcess> {
    const entry = await compiledChild(options.entry);
    const log = createWriteStream(options.logFile, { flags: 'a' });
    const child = fork(entry, [], {
      // BENCH_CHILD_NODE_ARGS adds flags to every server child, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`
      // to profile one workload (Node refuses --cpu-prof in NODE_OPTIONS).
      // Compiled JavaScript, not tsx (see compiledChild).
      execArgv: ['--expose-gc', ...childNodeArgs()],
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    live.add(child);
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new Error(
            `server did not start within ${options.startTimeoutMs ?? 30_000} ms (${options.logFile})`,
          ),
        );
      }, options.startTimeoutMs ?? 30_000);
      child.on('message', (message: ChildMessage) => {
        if (message.type === 'ready') {
          clearTimeout(timer);
          resolve(new ServerProcess(child, message.port));
        } else if (message.type === 'failed') {
          clearTimeout(timer);
          reject(new Error(message.message));
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        // The log goes away with the run's temp dir: carry its end in the error.
        void logTail(options.logFile).then((tail) =>
          reject(new Error(`server exited with ${code} before it listened: ${tail}`)),
        );
      });
    });
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  #request(type: ParentRequest['type'], timeoutMs = 60_000): Promise<number | ServerStats | null> {
    if (this.#child.exitCode !== null || !this.#child.connected) return Promise.resolve(null);
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve(null);
      }, timeoutMs);
      this.#pending.set(id, (value) => {
        clearTimeout(timer);
        resolve(value);
      });
      this.#child.send({ type, id } satisfies ParentRequest);
    });
  }

  /** Resident set size of the server process in bytes, after a full GC in the child. */
  /**
   * CPU seconds (user + system) the child has used so far, from /proc (null elsewhere): read
   * without waking its event loop, so a reading costs the server nothing.
   */
  async cpuSeconds(): Promise<number | null> {
    try {
      const stat = await readFile(`/proc/${this.pid}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces) start past its closing parenthesis.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime and stime are fields 14 and 15 of the line, in clock ticks (100 a second on Linux).
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
    } catch {
      return null;
    }
  }

  async rss(): Promise<number> {
    await this.#request('gc');
    try {
      // /proc reads the kernel's figure without waking the child's event loop.
      const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
      const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
      if (match?.[1]) return Number(match[1]) * 1024;
    } catch {
      // Not Linux: ask the child instead.
    }
    const value = await this.#request('rss');
    return typeof value === 'number' ? value : Number.NaN;
  }

  /** The child's own storage figures, if it reports any. */
  async stats(): Promise<ServerStats> {
    const value = await this.#request('stats');
    return value !== null && typeof value === 'object' ? value : {};
  }

  /**
   * Kills the child at once (SIGKILL to its own pid) and waits for it to exit; closes it
   * gracefully instead when BENCH_CHILD_NODE_ARGS asks for a profile, which only an exit writes.
   */
  kill(): Promise<void> {
    if (CHILDREN_PROFILE) return this.close();
    this.#closed ??= (async () => {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
      this.#child.kill('SIGKILL');
      await exited;
    })();
    return this.#closed;
  }

  /** Asks the child to close its server and flush storage; kills it if that takes too long. Idempotent. */
  close(timeoutMs = 300_000): Promise<void> {
    this.#closed ??= (async () => {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
      await this.#request('close', timeoutMs);
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    })();
    return this.#closed;
  }
}
