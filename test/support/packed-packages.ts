import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The repo's publishable packages as npm sees them: which they are, built in dependency order,
// packed into tarballs. Used by the packaging test, which installs them into an app outside
// the workspace the way a new user's app gets them from the registry.

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A workspace package that is not private, with the parts of its manifest the checks read. */
export interface Publishable {
  /** Its directory, relative to the root (`packages/client`). */
  readonly dir: string;
  readonly name: string;
  readonly version: string;
  readonly manifest: Manifest;
}

/** The fields of a package.json the packaging checks look at. */
export interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly private?: boolean;
  readonly bin?: Record<string, string>;
  readonly exports?: Record<string, Record<string, string> | string>;
  readonly dependencies?: Record<string, string>;
  readonly devDependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
}

/** What `npm pack --json` reports for one package. */
export interface PackedTarball {
  readonly name: string;
  readonly version: string;
  /** The tarball's file name. */
  readonly filename: string;
  readonly files: readonly { readonly path: string }[];
}

/** How a command ended. */
export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as Manifest;
}

/** Every workspace of the root package.json that npm would publish, in dependency order. */
export function publishableWorkspaces(): Publishable[] {
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
  const dirs = root.workspaces.flatMap((pattern) =>
    pattern.endsWith('/*')
      ? readdirSync(join(ROOT, pattern.slice(0, -2)), { withFileTypes: true })
          .filter((entry) => entry.isDirectory())
          .map((entry) => `${pattern.slice(0, -2)}/${entry.name}`)
      : [pattern],
  );
  const all = dirs
    .map((dir) => ({ dir, manifest: readManifest(dir) }))
    .filter((p) => p.manifest.private !== true);
  const byName = new Map(all.map((p) => [p.manifest.name, p]));
  // Depth-first over runtime dependencies: a package builds after what its dist imports.
  const ordered: Publishable[] = [];
  const seen = new Set<string>();
  const visit = (name: string): void => {
    const pkg = byName.get(name);
    if (!pkg || seen.has(name)) return;
    seen.add(name);
    for (const dep of Object.keys(pkg.manifest.dependencies ?? {})) visit(dep);
    ordered.push({ dir: pkg.dir, name, version: pkg.manifest.version, manifest: pkg.manifest });
  };
  for (const name of byName.keys()) visit(name);
  return ordered;
}

/** True when `version` satisfies a caret range `^a.b.c` (npm's rule, including 0.x). */
export function satisfiesCaret(range: string, version: string): boolean {
  const want = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range);
  const have = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!want || !have) return false;
  const [a, b, c] = want.slice(1).map(Number) as [number, number, number];
  const [x, y, z] = have.slice(1).map(Number) as [number, number, number];
  if (a > 0) return x === a && (y > b || (y === b && z >= c));
  if (b > 0) return x === 0 && y === b && z >= c;
  return x === 0 && y === 0 && z === c;
}

/**
 * The environment for an npm run inside this test: npm's own variables of the `npm test` that
 * started us (workspace, prefix, config) would otherwise steer the nested npm.
 */
export function plainEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) && key !== 'INIT_CWD') env[key] = value;
  }
  return { ...env, ...extra };
}

/**
 * Runs a command to its end in its own process group, so that a timeout ends everything it
 * started (npm runs node-gyp, which runs make and the compiler). Rejects with its output on a
 * non-zero exit or after `timeoutMs`.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: { readonly cwd: string; readonly timeoutMs: number; readonly env?: NodeJS.ProcessEnv },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? plainEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, options.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = `${command} ${args.join(' ')}`;
      if (timedOut) reject(new Error(`${line}: no end after ${options.timeoutMs} ms\n${stdout}\n${stderr}`));
      else if (code !== 0) reject(new Error(`${line}: exit ${code ?? signal}\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** Builds the packages' `dist/` (ESM + .d.ts), each after its dependencies. */
export async function buildPackages(packages: readonly Publishable[]): Promise<void> {
  for (const pkg of packages) {
    await runCommand('npm', ['run', 'build', `--workspace=${pkg.dir}`], { cwd: ROOT, timeoutMs: 300_000 });
  }
}

/**
 * `npm pack`s each package into a directory of its own under `destination` (`@scopesync/relay`
 * and `scopesync-relay` both become `scopesync-relay-<version>.tgz`); returns what npm says
 * each tarball holds, with its path.
 */
export async function packPackages(
  packages: readonly Publishable[],
  destination: string,
): Promise<(PackedTarball & { readonly path: string })[]> {
  const packed: (PackedTarball & { readonly path: string })[] = [];
  for (const pkg of packages) {
    const dir = join(destination, pkg.dir.replaceAll('/', '-'));
    await mkdir(dir, { recursive: true });
    const { stdout } = await runCommand(
      'npm',
      ['pack', '--json', `--pack-destination=${dir}`, `--workspace=${pkg.dir}`],
      {
        cwd: ROOT,
        timeoutMs: 120_000,
      },
    );
    for (const tarball of JSON.parse(stdout) as PackedTarball[])
      packed.push({ ...tarball, path: join(dir, tarball.filename) });
  }
  return packed;
}
