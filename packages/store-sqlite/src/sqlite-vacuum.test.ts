import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteDocStore } from './sqlite-doc-store.ts';
import { SqliteRelayStore } from './sqlite-relay-store.ts';

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

function tempFile(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'scopesync-vacuum-'));
  dirs.push(dir);
  return join(dir, name);
}

describe('SqliteDocStore file size', () => {
  it('gives freed pages back after compaction and removal', async () => {
    const path = tempFile('docs.sqlite');
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

describe('SqliteRelayStore file size', () => {
  it('gives the pages of a deleted blob back', async () => {
    const path = tempFile('relay.sqlite');
    const store = new SqliteRelayStore({ path });
    const now = 1;
    const create = (name: string) =>
      ({
        name,
        owner: 'user_00000000000000a1',
        read: 0,
        write: 0,
        encrypted: false,
        minEpoch: 0,
        createdAt: now,
        updatedAt: now,
        size: 0,
        version: 0,
      }) as const;
    await store.putBlobData('blob/big', {
      data: new Uint8Array(4 * 1024 * 1024).fill(7),
      create: create('blob/big'),
      now,
    });
    await store.putBlobData('blob/small', { data: new Uint8Array(16), create: create('blob/small'), now });
    await store.close();
    const grown = fileBytes(path);

    const reopened = new SqliteRelayStore({ path });
    expect(await reopened.deleteObject('blob/big')).toBe(true);
    await reopened.close();
    // 4 MiB of blob bytes were freed; the file (with its checkpointed WAL) must shrink with them.
    expect(fileBytes(path)).toBeLessThan(grown / 4);
    const again = new SqliteRelayStore({ path });
    expect((await again.getBlobData('blob/small'))?.byteLength).toBe(16);
    await again.close();
  });
});
