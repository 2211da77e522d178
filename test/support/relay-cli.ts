import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// The `scopesync-relay` command, run from source (no build) the way an operator runs it.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = ['--import', 'tsx', '--conditions=source', 'apps/relay/src/cli.ts'];

/** How a CLI process ended, with everything it printed. */
export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A CLI process and its end. */
export interface CliProcess {
  readonly child: ChildProcess;
  /** Resolves once the process exited and its output is closed. */
  readonly finished: Promise<Finished>;
}

/** Spawns `scopesync-relay <args>` with `env` over this process's environment. */
export function spawnCli(args: readonly string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [...CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: 'pipe',
  });
  return watchProcess(child);
}

/** Collects the output and the end of a spawned process (any command, e.g. an installed `scopesync-relay`). */
export function watchProcess(child: ChildProcess): CliProcess {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const finished = new Promise<Finished>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, finished };
}

/** Runs `scopesync-relay <args>` to its end. */
export function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<Finished> {
  return spawnCli(args, env).finished;
}

/** Resolves with the URL a starting relay prints once it listens; rejects when it exits first. */
export function listeningUrl(cli: CliProcess): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let seen = '';
    cli.child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(seen);
      if (match?.[1]) resolve(match[1]);
    });
    void cli.finished.then((f) =>
      reject(new Error(`the relay exited early (${f.code ?? f.signal}): ${f.stderr}`)),
    );
  });
}

/** Starts `scopesync-relay start <args>` and resolves once it listens. */
export async function startCli(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<CliProcess & { readonly url: string }> {
  const cli = spawnCli(['start', ...args], env);
  return { ...cli, url: await listeningUrl(cli) };
}
