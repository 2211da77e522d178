import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { REPO_ROOT } from '../paths.ts';

/**
 * Where compiled children go: under the repository's node_modules, so the npm packages left
 * external resolve from there as they would for the published build.
 */
const OUT_DIR = join(REPO_ROOT, 'node_modules', '.cache', 'scopesync-bench');

/**
 * Compiles a server child and the workspace packages it imports (`@scopesync/*`, from their
 * TypeScript sources, and the CLI's `scopesync-relay`) to one plain ES module, npm packages left external: every server runs as
 * JavaScript without tsx, as the published packages do. tsx compiles with esbuild's
 * `keepNames`, which wraps every function the relay creates per socket in an
 * `Object.defineProperty(fn, 'name')` — CPU on every upgrade and a property table per closure
 * that no build pays — and its loader and transform caches add tens of MiB to a process with
 * many TypeScript modules (ours) more than to one with few (the peers' children). Returns the
 * compiled module's URL.
 */
export function compiledChild(entry: URL): Promise<URL> {
  // Once per entry and run: several processes of one deployment start at once.
  let compiled = builds.get(entry.href);
  if (!compiled) {
    compiled = compile(entry);
    builds.set(entry.href, compiled);
  }
  return compiled;
}

const builds = new Map<string, Promise<URL>>();

/** The repository's own packages (`packages/*`, and `apps/relay` as `scopesync-relay`): compiled from source. */
const WORKSPACE = /^(@scopesync\/|scopesync-relay(\/|$))/;

async function compile(entry: URL): Promise<URL> {
  await mkdir(OUT_DIR, { recursive: true });
  const outfile = join(OUT_DIR, basename(fileURLToPath(entry)).replace(/\.ts$/, '.mjs'));
  await build({
    entryPoints: [fileURLToPath(entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['source'],
    keepNames: false,
    logLevel: 'error',
    plugins: [
      {
        name: 'npm-external',
        setup(b) {
          // Bare imports other than the workspace packages load from node_modules at run time.
          b.onResolve({ filter: /^[^./]/ }, (args) =>
            WORKSPACE.test(args.path) ? undefined : { path: args.path, external: true },
          );
        },
      },
    ],
  });
  return pathToFileURL(outfile);
}
