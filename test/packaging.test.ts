import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildPackages,
  type PackedTarball,
  type Publishable,
  packPackages,
  plainEnv,
  publishableWorkspaces,
  ROOT,
  runCommand,
  satisfiesCaret,
} from './support/packed-packages.ts';
import { type CliProcess, listeningUrl, watchProcess } from './support/relay-cli.ts';

// A new app developer's first hour, from outside the repo: the packages as npm would publish
// them, installed into examples/tour (not a workspace member), type-checked under strict tsc,
// the relay started from the app's own node_modules, and the README's tour run against it.
//
// Slow on purpose: a fresh install compiles better-sqlite3 from source (about two minutes on
// two cores, several times that when other work shares them), so the set-up gets twenty
// minutes. Nothing here is timed; every step is bounded, and the relay and the temp dirs are
// removed afterwards.

const SETUP_TIMEOUT_MS = 20 * 60_000;
const EXAMPLE = join(ROOT, 'examples/tour');
/** What the app installs: the client and the relay command, with what they depend on. */
const INSTALLED = new Set([
  '@scopesync/core',
  '@scopesync/crypto',
  '@scopesync/client',
  '@scopesync/relay',
  '@scopesync/store-sqlite',
  '@scopesync/store-postgres',
  'scopesync-relay',
]);

let work: string;
let app: string;
let packages: Publishable[];
let tarballs: (PackedTarball & { readonly path: string })[];
let relay: (CliProcess & { readonly url: string }) | undefined;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'scopesync-packaging-'));
  app = join(work, 'app');
  packages = publishableWorkspaces();
  await buildPackages(packages);
  tarballs = await packPackages(packages, join(work, 'tarballs'));
  await cp(EXAMPLE, app, {
    recursive: true,
    filter: (source) => !/[/\\](node_modules|dist|data)$/.test(source),
  });
  // The README's own tour, type-checked with the app (never run: its friend id is made up).
  await writeFile(join(app, 'src/readme-tour.ts'), await readmeTour());
  const files = tarballs.filter((t) => INSTALLED.has(t.name)).map((t) => t.path);
  await runCommand('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...files], {
    cwd: app,
    timeoutMs: 15 * 60_000,
  });
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  if (relay) await stop(relay);
  if (work) await rm(work, { recursive: true, force: true });
});

/** The README's 30-second tour: the TypeScript block under its heading. */
async function readmeTour(): Promise<string> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## A 30-second tour'));
  const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error('README.md has no ```ts block under "A 30-second tour"');
  return block;
}

/** Stops a relay with SIGTERM (SIGKILL to its group if it hangs) and returns its exit code. */
async function stop(cli: CliProcess): Promise<number | null> {
  if (cli.child.exitCode !== null) return cli.child.exitCode;
  cli.child.kill('SIGTERM');
  const hung = setTimeout(() => {
    if (cli.child.pid !== undefined) process.kill(-cli.child.pid, 'SIGKILL');
  }, 20_000);
  const { code } = await cli.finished.finally(() => clearTimeout(hung));
  return code;
}

describe('the packed packages', () => {
  it('hold built ESM, types, a README and the LICENSE, and no tests', () => {
    expect(tarballs.map((t) => t.name).sort()).toEqual(packages.map((p) => p.name).sort());
    for (const tarball of tarballs) {
      const files = new Set(tarball.files.map((f) => f.path));
      const pkg = packages.find((p) => p.name === tarball.name);
      const entryPoints = Object.values(pkg?.manifest.exports ?? {}).flatMap((target) =>
        typeof target === 'string' ? [target] : Object.values(target),
      );
      const wanted = [
        'package.json',
        'README.md',
        'LICENSE',
        ...entryPoints,
        ...Object.values(pkg?.manifest.bin ?? {}),
      ];
      expect(
        wanted.map((path) => path.replace(/^\.\//, '')).filter((path) => !files.has(path)),
        tarball.name,
      ).toEqual([]);
      expect(
        [...files].filter((path) => /\.test\./.test(path)),
        tarball.name,
      ).toEqual([]);
    }
  });

  it('depend on each other by version ranges the packed versions satisfy', () => {
    const versions = new Map(packages.map((p) => [p.name, p.version]));
    const unsatisfied: string[] = [];
    for (const pkg of packages) {
      const { dependencies = {}, peerDependencies = {}, devDependencies = {} } = pkg.manifest;
      for (const [dep, range] of Object.entries({
        ...dependencies,
        ...peerDependencies,
        ...devDependencies,
      })) {
        const version = versions.get(dep);
        if (version !== undefined && !satisfiesCaret(range, version))
          unsatisfied.push(`${pkg.name} → ${dep}@${range}`);
      }
    }
    expect(unsatisfied).toEqual([]);
  });
});

describe('an app outside the workspace (examples/tour)', () => {
  it('runs the README tour line for line', async () => {
    const tour = new Set(
      (await readFile(join(EXAMPLE, 'src/tour.ts'), 'utf8')).split('\n').map((l) => l.trim()),
    );
    // Only the set-up differs: Node needs `ws`, and the friend is a real second client there.
    const missing = (await readmeTour())
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('//'))
      .filter((line) => !line.includes('createClient({') && !line.startsWith('const friendId ='))
      .filter((line) => !tour.has(line));
    expect(missing).toEqual([]);
  });

  it('type-checks against the installed packages under strict tsc, README tour included', async () => {
    await runCommand(join(app, 'node_modules/.bin/tsc'), ['-p', '.'], { cwd: app, timeoutMs: 180_000 });
  });

  it('finds scopesync-relay with npx', async () => {
    const { stdout } = await runCommand('npx', ['scopesync-relay', '--help'], {
      cwd: app,
      timeoutMs: 60_000,
    });
    expect(stdout).toContain('scopesync-relay start');
  });

  it('runs the tour against scopesync-relay started from its node_modules', async () => {
    const dataDir = join(work, 'data');
    const cli = watchProcess(
      spawn(
        join(app, 'node_modules/.bin/scopesync-relay'),
        ['start', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir],
        { cwd: app, env: plainEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true },
      ),
    );
    relay = { ...cli, url: await listeningUrl(cli) };
    const { stdout } = await runCommand(process.execPath, ['dist/tour.js'], {
      cwd: app,
      env: plainEnv({ SCOPESYNC_URL: relay.url }),
      timeoutMs: 120_000,
    });
    expect(stdout.trim().split('\n')).toEqual([
      'refused: Forbidden',
      'recovery phrase: 24 words',
      'friend reads profile: {"name":"Ada","bio":"hello"}',
      'friend reads design: first draft',
      'friend reads diary: Forbidden',
    ]);
    // The relay stops cleanly on SIGTERM, with the tour's writes committed.
    expect(await stop(relay)).toBe(0);
    relay = undefined;
  });
});
