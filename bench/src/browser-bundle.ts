import { gzipSync } from 'node:zlib';
import { build, type Metafile } from 'esbuild';
import { BENCH_DIR } from './paths.ts';

/** What a browser app's bundle weighs, and what it loads before it runs. */
export interface BrowserBundle {
  /** The entry chunk and every chunk it imports statically: what a page loads before it runs. */
  readonly initial: {
    readonly gzipBytes: number;
    readonly minifiedBytes: number;
    readonly chunks: number;
    /** The source files bundled into those chunks (paths relative to bench/). */
    readonly inputs: readonly string[];
  };
  /** Every chunk, including those loaded by `import()` only when needed. */
  readonly total: {
    readonly gzipBytes: number;
    readonly inputs: readonly string[];
  };
}

/** gzip at level 9, as static file servers precompress. */
const gzipSize = (bytes: Uint8Array): number => gzipSync(bytes, { level: 9 }).byteLength;

/**
 * Bundles `entry` (module source) for browsers with esbuild: minified ES2022 modules, code
 * splitting so that each dynamic `import()` becomes a chunk of its own. Workspace packages
 * bundle from source (the repo's `source` condition): the same code tsc builds into dist/,
 * without a build first.
 */
export async function bundleForBrowser(entry: string): Promise<BrowserBundle> {
  const result = await build({
    stdin: { contents: entry, resolveDir: BENCH_DIR, loader: 'ts', sourcefile: 'entry.ts' },
    bundle: true,
    minify: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['source'],
    // Node-only code behind import() (the client's seed file): never reached in a browser.
    external: ['node:*'],
    define: { 'process.env.NODE_ENV': '"production"' },
    outdir: 'out',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const { outputs } = result.metafile;
  const initial = staticClosure(result.metafile);
  const contents = new Map(
    result.outputFiles.map((file) => [file.path.slice(file.path.lastIndexOf('/out/') + 1), file.contents]),
  );
  const sum = (paths: readonly string[], size: (bytes: Uint8Array) => number): number =>
    paths.reduce((total, path) => total + size(contents.get(path) ?? new Uint8Array()), 0);
  const js = Object.keys(outputs).filter((path) => path.endsWith('.js'));
  const inputsOf = (paths: readonly string[]): string[] => [
    ...new Set(paths.flatMap((path) => Object.keys(outputs[path]?.inputs ?? {}))),
  ];
  const initialJs = js.filter((path) => initial.has(path));
  return {
    initial: {
      gzipBytes: sum(initialJs, gzipSize),
      minifiedBytes: sum(initialJs, (bytes) => bytes.byteLength),
      chunks: initialJs.length,
      inputs: inputsOf(initialJs),
    },
    total: { gzipBytes: sum(js, gzipSize), inputs: inputsOf(js) },
  };
}

/** The entry's output and every chunk reachable from it by static imports. */
function staticClosure(metafile: Metafile): Set<string> {
  const { outputs } = metafile;
  const entry = Object.keys(outputs).find((path) => outputs[path]?.entryPoint !== undefined);
  const seen = new Set<string>();
  const visit = (path: string): void => {
    if (seen.has(path)) return;
    seen.add(path);
    for (const imported of outputs[path]?.imports ?? []) {
      if (imported.kind === 'import-statement' && !imported.external) visit(imported.path);
    }
  };
  if (entry !== undefined) visit(entry);
  return seen;
}
