import { SyncError } from '@scopesync/core';
import { checkLength } from '../bytes.ts';

// The root seed at rest for a Node client: a small text file readable by its owner only.
//
//   scopesync-root-seed-v1
//   <64 lowercase hex characters>
//
// This module uses no Node types: the few file operations it needs are the structural interface
// below, which `node:fs/promises` satisfies as it is. It loads that module itself unless given one,
// so the package still type-checks for the browser and a test can pass a fake.

/** The part of `node:fs/promises` the seed file needs. Pass the real module or a fake. */
export interface SeedFileSystem {
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array, options: { mode: number; flag: string }): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  stat(path: string): Promise<{ mode: number }>;
  mkdir(path: string, options: { recursive: true; mode: number }): Promise<unknown>;
}

/** Options of {@link readSeedFile} and {@link writeSeedFile}. */
export interface SeedFileOptions {
  /** The file system; default `node:fs/promises`. */
  readonly fs?: SeedFileSystem;
}

/** Options of {@link readSeedFile}. */
export interface ReadSeedFileOptions extends SeedFileOptions {
  /** Read even when group or others have permissions on the file. Default false (POSIX only). */
  readonly allowInsecureMode?: boolean;
}

/** Options of {@link writeSeedFile}. */
export interface WriteSeedFileOptions extends SeedFileOptions {
  /** Replace an existing seed file. Default false: losing a seed loses the identity, so say so. */
  readonly overwrite?: boolean;
}

/** The file mode a seed file is created with: read and write for its owner, nothing for anyone else. */
export const SEED_FILE_MODE = 0o600;

const MAGIC = 'scopesync-root-seed-v1';
const NODE_FS: string = 'node:fs/promises';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function fileSystem(options: SeedFileOptions): Promise<SeedFileSystem> {
  if (options.fs !== undefined) return options.fs;
  try {
    return (await import(/* @vite-ignore */ NODE_FS)) as SeedFileSystem;
  } catch (cause) {
    throw new SyncError('Unavailable', 'seed files need Node (node:fs/promises)', { cause });
  }
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

function isWindows(): boolean {
  return (globalThis as { process?: { platform?: string } }).process?.platform === 'win32';
}

/**
 * Reads the root seed from `path`. NotFound when there is no file (a first run: generate a seed);
 * Forbidden when group or others have any permission on it (fix with `chmod 600`) unless
 * `allowInsecureMode`; BadRequest when the content is not a seed file.
 */
export async function readSeedFile(path: string, options: ReadSeedFileOptions = {}): Promise<Uint8Array> {
  const fs = await fileSystem(options);
  let mode: number;
  try {
    mode = (await fs.stat(path)).mode;
  } catch (cause) {
    if (errorCode(cause) === 'ENOENT') throw new SyncError('NotFound', `no seed file at ${path}`, { cause });
    throw new SyncError('Unavailable', `cannot read the seed file at ${path}`, { cause });
  }
  // Windows reports made-up POSIX modes, so the check would refuse every file there.
  if (!options.allowInsecureMode && !isWindows() && (mode & 0o077) !== 0) {
    throw new SyncError(
      'Forbidden',
      `seed file ${path} is accessible to other users (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
  const text = decoder.decode(await fs.readFile(path));
  const match = /^scopesync-root-seed-v1\r?\n([0-9a-f]{64})\r?\n?$/.exec(text);
  if (match === null) throw new SyncError('BadRequest', `${path} is not a scopesync seed file`);
  const hex = match[1] as string;
  const seed = new Uint8Array(32);
  for (let i = 0; i < 32; i++) seed[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return seed;
}

/**
 * Writes the root seed to `path` with mode 0600, creating missing parent directories with mode 0700.
 * The file appears whole or not at all (written beside it, then renamed). Conflict when a seed file
 * is already there, unless `overwrite`.
 */
export async function writeSeedFile(
  path: string,
  rootSeed: Uint8Array,
  options: WriteSeedFileOptions = {},
): Promise<void> {
  checkLength(rootSeed, 32, 'root seed');
  const fs = await fileSystem(options);
  if (!options.overwrite) {
    const exists = await fs.stat(path).then(
      () => true,
      (error: unknown) => {
        if (errorCode(error) === 'ENOENT') return false;
        throw new SyncError('Unavailable', `cannot check the seed file at ${path}`, { cause: error });
      },
    );
    if (exists) throw new SyncError('Conflict', `a seed file already exists at ${path}`);
  }
  const parent = path.replace(/[\\/][^\\/]*$/, '');
  if (parent !== path && parent !== '') await fs.mkdir(parent, { recursive: true, mode: 0o700 });
  let hex = '';
  for (const byte of rootSeed) hex += byte.toString(16).padStart(2, '0');
  const random = globalThis.crypto.getRandomValues(new Uint8Array(6));
  const temporary = `${path}.${Array.from(random, (b) => b.toString(16).padStart(2, '0')).join('')}.tmp`;
  try {
    // 'wx' refuses to follow a link planted at the temporary name; the mode is set at creation, so
    // there is no moment when the seed sits in a more permissive file.
    await fs.writeFile(temporary, encoder.encode(`${MAGIC}\n${hex}\n`), { mode: SEED_FILE_MODE, flag: 'wx' });
    await fs.rename(temporary, path);
  } catch (cause) {
    await fs.unlink(temporary).catch(() => undefined);
    throw new SyncError('Unavailable', `cannot write the seed file at ${path}`, { cause });
  }
}
