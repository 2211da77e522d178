import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WalSync } from './wal-sync.ts';

describe('WalSync', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scopesync-wal-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('flushes the log for every caller, also those that arrive while a flush runs', async () => {
    await writeFile(join(dir, 'db.sqlite-wal'), 'frames');
    const wal = new WalSync(join(dir, 'db.sqlite'));
    await expect(Promise.all(Array.from({ length: 20 }, () => wal.sync()))).resolves.toHaveLength(20);
    await wal.sync();
    await wal.close();
  });

  it('fails when the log cannot be flushed, so the write is not reported as stored', async () => {
    const wal = new WalSync(join(dir, 'missing.sqlite'));
    await expect(wal.sync()).rejects.toThrow(/ENOENT/);
    await wal.close();
  });

  it('refuses to flush once closed', async () => {
    await writeFile(join(dir, 'db.sqlite-wal'), 'frames');
    const wal = new WalSync(join(dir, 'db.sqlite'));
    await wal.sync();
    await wal.close();
    await wal.close();
    await expect(wal.sync()).rejects.toThrow(/closed/);
  });
});
