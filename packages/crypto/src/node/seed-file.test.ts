import { isSyncError } from '@scopesync/core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readSeedFile, type SeedFileSystem, writeSeedFile } from './seed-file.ts';

// Node's modules, loaded by a variable specifier because this package compiles without Node types.
interface NodeFs extends SeedFileSystem {
  mkdtemp(prefix: string): Promise<string>;
  chmod(path: string, mode: number): Promise<void>;
  writeFile(path: string, data: Uint8Array | string, options?: { mode: number; flag: string }): Promise<void>;
  rm(path: string, options: { recursive: true; force: true }): Promise<void>;
  readdir(path: string): Promise<string[]>;
}
const FS: string = 'node:fs/promises';
const OS: string = 'node:os';

async function kindOf(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    return isSyncError(error) ? error.kind : `not a SyncError: ${String(error)}`;
  }
  return 'no error';
}

const seed = (): Uint8Array => crypto.getRandomValues(new Uint8Array(32));

let fs: NodeFs;
let dir: string;

beforeAll(async () => {
  fs = (await import(/* @vite-ignore */ FS)) as NodeFs;
  const os = (await import(/* @vite-ignore */ OS)) as { tmpdir(): string };
  dir = await fs.mkdtemp(`${os.tmpdir()}/scopesync-seed-`);
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('seed file', () => {
  test('round-trips, owner-only (0600), in a new 0700 directory, leaving no temporary file', async () => {
    const path = `${dir}/a/nested/seed`;
    const rootSeed = seed();
    await writeSeedFile(path, rootSeed);
    expect((await fs.stat(path)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(`${dir}/a`)).mode & 0o777).toBe(0o700);
    expect(await readSeedFile(path)).toEqual(rootSeed);
    expect(await fs.readdir(`${dir}/a/nested`)).toEqual(['seed']);
  });

  test('never replaces an existing seed unless asked', async () => {
    const path = `${dir}/existing`;
    const first = seed();
    await writeSeedFile(path, first);
    expect(await kindOf(() => writeSeedFile(path, seed()))).toBe('Conflict');
    expect(await readSeedFile(path)).toEqual(first);
    const second = seed();
    await writeSeedFile(path, second, { overwrite: true });
    expect(await readSeedFile(path)).toEqual(second);
  });

  test('a file other users can read is Forbidden unless explicitly allowed', async () => {
    const path = `${dir}/loose`;
    const rootSeed = seed();
    await writeSeedFile(path, rootSeed);
    await fs.chmod(path, 0o644);
    expect(await kindOf(() => readSeedFile(path))).toBe('Forbidden');
    expect(await readSeedFile(path, { allowInsecureMode: true })).toEqual(rootSeed);
  });

  test('no file is NotFound; a file that is not a seed file is a BadRequest', async () => {
    expect(await kindOf(() => readSeedFile(`${dir}/missing`))).toBe('NotFound');
    const path = `${dir}/garbage`;
    await fs.writeFile(path, 'scopesync-root-seed-v1\nnot hex\n', { mode: 0o600, flag: 'w' });
    expect(await kindOf(() => readSeedFile(path))).toBe('BadRequest');
    expect(await kindOf(() => writeSeedFile(`${dir}/short`, new Uint8Array(31)))).toBe('BadRequest');
  });

  test('works against any file system with the same shape (an in-memory fake here)', async () => {
    const files = new Map<string, { data: Uint8Array; mode: number }>();
    const enoent = () => Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    const fake: SeedFileSystem = {
      readFile: async (p) => files.get(p)?.data ?? Promise.reject(enoent()),
      writeFile: async (p, data, { mode }) => void files.set(p, { data, mode }),
      rename: async (from, to) => {
        const file = files.get(from);
        if (file === undefined) throw enoent();
        files.delete(from);
        files.set(to, file);
      },
      unlink: async (p) => void files.delete(p),
      stat: async (p) => files.get(p) ?? Promise.reject(enoent()),
      mkdir: async () => undefined,
    };
    const rootSeed = seed();
    await writeSeedFile('/home/me/.scopesync/seed', rootSeed, { fs: fake });
    expect([...files.keys()]).toEqual(['/home/me/.scopesync/seed']);
    expect(files.get('/home/me/.scopesync/seed')?.mode).toBe(0o600);
    expect(await readSeedFile('/home/me/.scopesync/seed', { fs: fake })).toEqual(rootSeed);
  });
});
