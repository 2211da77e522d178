import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (bench/src/ → ../../). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../', import.meta.url)));

/** The bench package directory. */
export const BENCH_DIR = join(REPO_ROOT, 'bench');

/**
 * Where a run writes its results.md and results.json unless `--out` says otherwise: a folder
 * git ignores, so that a run never overwrites the committed reading (bench/results.md), which
 * is written by hand from runs.
 */
export const DEFAULT_OUT_DIR = join(BENCH_DIR, 'out');

/** The shared editing traces: beside the checkout, never copied into it. */
export const TRACES_DIR = resolve(REPO_ROOT, '..', 'shared', 'traces');

/** A fresh directory under the OS temp dir for one run's server data. */
export function makeRunDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'scopesync-bench-'));
}

/** Removes a directory made by `makeRunDir`. */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Total size in bytes of the regular files under `path` (0 when it does not exist). */
export async function dirSize(path: string): Promise<number> {
  let total = 0;
  let entries: string[];
  try {
    entries = await readdir(path, { recursive: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    try {
      const s = await stat(join(path, entry));
      if (s.isFile()) total += s.size;
    } catch {
      // A file removed while we walked (a compacted log) simply no longer counts.
    }
  }
  return total;
}
