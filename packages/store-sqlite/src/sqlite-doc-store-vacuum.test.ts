import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteDocStore } from './sqlite-doc-store.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function fileBytes(path: string): number {
  const wal = `${path}-wal`;
  let size = statSync(path).size;
  try {
    size += statSync(wal).size;
  } catch {
    // no WAL file
  }
  return size;
}

describe('SqliteDocStore file size', () => {
  it('gives freed pages back after compaction and removal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopesync-vacuum-'));
    dirs.push(dir);
    const path = join(dir, 'docs.sqlite');
    const store = new SqliteDocStore({ path });
    const chunk = new Uint8Array(64 * 1024).fill(7);
    let last = 0;
    for (let i = 0; i < 64; i++) last = await store.append('PUBLIC_RW/_/big', chunk);
    await store.append('PUBLIC_RW/_/other', chunk);
    await store.close();
    const grown = fileBytes(path);

    const reopened = new SqliteDocStore({ path });
    await reopened.compact('PUBLIC_RW/_/big', last, new Uint8Array(16));
    await reopened.remove('PUBLIC_RW/_/other');
    await reopened.close();
    // 4 MiB of entries were freed; the file (with its checkpointed WAL) must shrink with them.
    expect(fileBytes(path)).toBeLessThan(grown / 4);
  });
});
