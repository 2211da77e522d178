import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteHandle } from './sqlite-handle.ts';

const dirs: string[] = [];
const handles: SqliteHandle[] = [];
afterEach(async () => {
  for (const handle of handles.splice(0)) await handle.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function open(options: ConstructorParameters<typeof SqliteHandle>[0]): SqliteHandle {
  const handle = new SqliteHandle(options, 'TestStore', 'closed');
  handles.push(handle);
  return handle;
}

function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'scopesync-cache-'));
  dirs.push(dir);
  return join(dir, 'test.sqlite');
}

const cacheSize = (db: Database.Database): unknown => db.pragma('cache_size', { simple: true });

describe('the page cache of a SQLite store', () => {
  it('is the size asked for, in KiB, on a file the store opens; the driver’s default otherwise', () => {
    expect(cacheSize(open({ path: tempFile(), cacheKiB: 128 }).db)).toBe(-128);
    expect(cacheSize(open({ path: tempFile() }).db)).toBe(-16_000);
  });

  it('is left as it is on a lent database', () => {
    const db = new Database(':memory:');
    db.pragma('cache_size = -300');
    open({ database: db, cacheKiB: 128 });
    expect(cacheSize(db)).toBe(-300);
    db.close();
  });

  it('is refused below 16 KiB or when not whole', () => {
    for (const cacheKiB of [0, 8, 15, 64.5, Number.NaN]) {
      expect(() => open({ path: tempFile(), cacheKiB })).toThrow(
        expect.objectContaining({ kind: 'BadRequest', message: expect.stringContaining('cacheKiB') }),
      );
    }
  });
});
