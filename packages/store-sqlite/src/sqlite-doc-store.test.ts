import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isSyncError } from '@scopesync/core';
import { runDocStoreSuite } from '@scopesync/testing';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { SqliteDocStore } from './sqlite-doc-store.ts';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'scopesync-sqlite-'));
}

runDocStoreSuite('SqliteDocStore', async () => {
  const dir = await tempDir();
  const path = join(dir, 'docs.sqlite');
  return {
    subject: new SqliteDocStore({ path }),
    reopen: async () => new SqliteDocStore({ path }),
    teardown: () => rm(dir, { recursive: true, force: true }),
  };
});

runDocStoreSuite('SqliteDocStore writing on a thread', async () => {
  const dir = await tempDir();
  const path = join(dir, 'docs.sqlite');
  // A short idle time, so the suite also runs across the thread stopping and starting again.
  const open = (): SqliteDocStore => new SqliteDocStore({ path, writeOnThread: true, writerIdleMs: 5 });
  return {
    subject: open(),
    reopen: async () => open(),
    teardown: () => rm(dir, { recursive: true, force: true }),
  };
});

runDocStoreSuite('SqliteDocStore checkpointing on a thread', async () => {
  const dir = await tempDir();
  const path = join(dir, 'docs.sqlite');
  const open = (): SqliteDocStore => new SqliteDocStore({ path, checkpointOnThread: true, writerIdleMs: 5 });
  return {
    subject: open(),
    reopen: async () => open(),
    teardown: () => rm(dir, { recursive: true, force: true }),
  };
});

runDocStoreSuite('SqliteDocStore in a shared database handle', async () => {
  const dir = await tempDir();
  const path = join(dir, 'relay.sqlite');
  const handles: Database.Database[] = [];
  const open = (): SqliteDocStore => {
    const database = new Database(path);
    database.pragma('journal_mode = WAL');
    // Another component's table in the same file must not disturb the document tables.
    database.exec('CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY)');
    handles.push(database);
    return new SqliteDocStore({ database });
  };
  return {
    subject: open(),
    reopen: async () => {
      for (const h of handles) h.close();
      return open();
    },
    teardown: async () => {
      for (const h of handles) if (h.open) h.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteDocStore options', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('opens its own file in WAL mode, with synchronous NORMAL when asked', async () => {
    const full = join(dir, 'full.sqlite');
    await new SqliteDocStore({ path: full }).close();
    const normal = join(dir, 'normal.sqlite');
    const store = new SqliteDocStore({ path: normal, synchronous: 'NORMAL' });
    expect(await store.append('doc', new Uint8Array([1]))).toBe(1);
    await store.close();
    // journal_mode persists in the file; synchronous is per connection and not visible from here.
    const check = new Database(full, { readonly: true });
    expect(check.pragma('journal_mode', { simple: true })).toBe('wal');
    check.close();
  });

  it('leaves a shared handle open and its pragmas alone when it closes', async () => {
    const database = new Database(join(dir, 'shared.sqlite'));
    database.pragma('synchronous = OFF');
    const store = new SqliteDocStore({ database, synchronous: 'FULL' });
    await store.append('doc', new Uint8Array([1, 2]));
    await store.close();
    expect(database.open).toBe(true);
    expect(database.pragma('synchronous', { simple: true })).toBe(0);
    expect(database.prepare('SELECT count(*) FROM doc_entries').pluck().get()).toBe(1);
    database.close();
  });

  it('rejects with Unavailable when the shared handle was closed by its owner', async () => {
    const database = new Database(join(dir, 'shared.sqlite'));
    const store = new SqliteDocStore({ database });
    database.close();
    await expect(store.append('doc', new Uint8Array([1]))).rejects.toSatisfy((e) =>
      isSyncError(e, 'Unavailable'),
    );
    await store.close();
  });

  it('refuses bad options with BadRequest and an unreachable file with Unavailable', () => {
    const kindOf = (make: () => unknown): unknown => {
      try {
        make();
      } catch (error) {
        return isSyncError(error) ? error.kind : error;
      }
      return 'no error';
    };
    expect(kindOf(() => new SqliteDocStore({}))).toBe('BadRequest');
    expect(kindOf(() => new SqliteDocStore({ path: join(dir, 'x'), synchronous: 'OFF' as 'FULL' }))).toBe(
      'BadRequest',
    );
    expect(kindOf(() => new SqliteDocStore({ path: join(dir, 'missing', 'dir', 'x.sqlite') }))).toBe(
      'Unavailable',
    );
  });

  it('rolls back a whole batch and a whole compaction when SQLite fails halfway through', async () => {
    const database = new Database(join(dir, 'poisoned.sqlite'));
    const store = new SqliteDocStore({ database });
    const a1 = await store.append('a', new Uint8Array([1]));
    const p = [
      await store.append('poisoned', new Uint8Array([2])),
      await store.append('poisoned', new Uint8Array([3])),
    ];
    // Fail inside the transaction, after earlier statements of it already ran.
    database.exec(`
      CREATE TRIGGER poison_insert BEFORE INSERT ON doc_entries WHEN NEW.doc = 'poisoned'
        BEGIN SELECT RAISE(ABORT, 'poisoned insert'); END;
      CREATE TRIGGER poison_update BEFORE UPDATE ON doc_entries WHEN NEW.doc = 'poisoned'
        BEGIN SELECT RAISE(ABORT, 'poisoned update'); END;
    `);
    await expect(
      store.appendBatch([
        { doc: 'a', data: new Uint8Array([4]) },
        { doc: 'b', data: new Uint8Array([5]) },
        { doc: 'poisoned', data: new Uint8Array([6]) },
      ]),
    ).rejects.toSatisfy((e) => isSyncError(e, 'Internal'));
    await expect(store.compact('poisoned', p[1] as number, new Uint8Array([9]))).rejects.toSatisfy((e) =>
      isSyncError(e, 'Internal'),
    );
    expect((await store.load('a')).map((e) => [e.seq, [...e.data]])).toEqual([[a1, [1]]]);
    expect(await store.head('a')).toBe(a1);
    expect(await store.head('b')).toBe(0);
    expect((await store.load('poisoned')).map((e) => [e.seq, [...e.data]])).toEqual([
      [p[0], [2]],
      [p[1], [3]],
    ]);
    expect(await store.head('poisoned')).toBe(p[1]);
    await store.close();
    database.close();
  });

  it('keeps its log file bounded when it checkpoints on a thread', async () => {
    const path = join(dir, 'bounded.sqlite');
    // NORMAL: no fsync per commit, so the test is quick; checkpoints work the same way.
    const store = new SqliteDocStore({ path, synchronous: 'NORMAL', checkpointOnThread: true });
    const data = new Uint8Array(100).fill(7);
    // 2,500 commits write about 5,000 log pages (20 MB): without checkpoints the log holds them all.
    for (let i = 0; i < 2500; i++) await store.append(`doc-${i % 50}`, data);
    const logBytes = (await stat(`${path}-wal`)).size;
    expect(logBytes).toBeLessThan(12 * 1024 * 1024);
    expect((await store.load('doc-7')).length).toBe(50);
    await store.close();
  });

  it('lays its log out when it opens on a thread, and writes its first commits over it instead of growing it', async () => {
    const path = join(dir, 'laid-out.sqlite');
    const store = new SqliteDocStore({ path, checkpointOnThread: true });
    const laidOut = (await stat(`${path}-wal`)).size;
    // Past a checkpoint's thousand pages of 4 KiB: the log's whole first pass.
    expect(laidOut).toBeGreaterThan(1000 * 4096);
    const data = new Uint8Array(100).fill(3);
    for (let i = 0; i < 200; i++) await store.append(`doc-${i % 7}`, data);
    expect((await stat(`${path}-wal`)).size).toBe(laidOut);
    await store.close();
    // The zeros past the last commit are no frames: a new connection reads exactly what was written.
    const again = new SqliteDocStore({ path });
    expect((await again.load('doc-3')).map((e) => e.data)).toEqual(Array(29).fill(data));
    await again.close();
  });

  it('continues the seqs of a file whose head rows moved with every append (earlier versions)', async () => {
    const path = join(dir, 'earlier.sqlite');
    // What an earlier version left: a head row per document at its newest seq, and a removed
    // document whose head row is all that is left of it.
    const earlier = new Database(path);
    earlier.pragma('journal_mode = WAL');
    earlier.exec(`
      CREATE TABLE doc_entries (doc TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (doc, seq));
      CREATE TABLE doc_heads (doc TEXT NOT NULL PRIMARY KEY, seq INTEGER NOT NULL);
      INSERT INTO doc_entries VALUES ('kept', 1, x'01'), ('kept', 2, x'02'), ('compacted', 5, x'05');
      INSERT INTO doc_heads VALUES ('kept', 2), ('compacted', 5), ('removed', 9);
    `);
    earlier.close();
    for (const writeOnThread of [false, true]) {
      const store = new SqliteDocStore({ path, synchronous: 'NORMAL', writeOnThread });
      const offset = writeOnThread ? 1 : 0;
      expect(await store.heads(['kept', 'compacted', 'removed', 'new'])).toEqual(
        new Map([
          ['kept', 2 + offset],
          ['compacted', 5 + offset],
          ['removed', 9 + offset],
          ['new', offset],
        ]),
      );
      expect(
        await store.appendBatch([
          { doc: 'kept', data: new Uint8Array([3]) },
          { doc: 'compacted', data: new Uint8Array([6]) },
          { doc: 'removed', data: new Uint8Array([10]) },
          { doc: 'new', data: new Uint8Array([1]) },
        ]),
      ).toEqual([3 + offset, 6 + offset, 10 + offset, 1 + offset]);
      await store.close();
    }
  });

  it('never reuses a removed document’s seqs, on its own connection and on a thread', async () => {
    for (const writeOnThread of [false, true]) {
      const store = new SqliteDocStore({
        path: join(dir, `removed-${writeOnThread}.sqlite`),
        synchronous: 'NORMAL',
        writeOnThread,
      });
      for (let i = 0; i < 3; i++) await store.append('doc', new Uint8Array([i]));
      await store.compact('doc', 3, new Uint8Array([9]));
      await store.remove('doc');
      expect(await store.head('doc')).toBe(3);
      await store.remove('doc');
      expect(await store.head('doc')).toBe(3);
      expect(await store.append('doc', new Uint8Array([4]))).toBe(4);
      await store.close();
    }
  });

  it('rejects data that is not bytes with BadRequest instead of storing it as text', async () => {
    const store = new SqliteDocStore({ path: join(dir, 'typed.sqlite') });
    await expect(store.append('doc', 'text' as unknown as Uint8Array)).rejects.toSatisfy((e) =>
      isSyncError(e, 'BadRequest'),
    );
    expect(await store.docs()).toEqual([]);
    await store.close();
  });
});

/**
 * The child appends Yjs updates (single appends and batches) and compacts in a loop, printing
 * a line only after each call resolved. It resumes from what the store holds, so several
 * rounds of kill and restart run against one file.
 */
const CHILD = `
import * as Y from 'yjs';
import { SqliteDocStore } from '@scopesync/store-sqlite';
const store = new SqliteDocStore({
  path: process.env.SCOPESYNC_CRASH_DB,
  writeOnThread: process.env.SCOPESYNC_CRASH_THREAD === 'writes',
  checkpointOnThread: process.env.SCOPESYNC_CRASH_THREAD === 'checkpoints',
});
const doc = new Y.Doc();
for (const e of await store.load('crash')) Y.applyUpdate(doc, e.data);
const map = doc.getMap('m');
const text = doc.getText('t');
let next = map.size;
const say = (line) => process.stdout.write(line + '\\n');
say('ready ' + next);
for (;;) {
  const updates = [];
  const capture = (u) => updates.push(u);
  doc.on('update', capture);
  const count = 1 + (next % 3);
  const first = next;
  for (let k = 0; k < count; k++, next++) {
    doc.transact(() => {
      map.set('k' + next, next);
      text.insert(0, 'w' + next + ' '.repeat(next % 200));
    });
  }
  doc.off('update', capture);
  const seqs = count === 1
    ? [await store.append('crash', updates[0])]
    : await store.appendBatch(updates.map((data) => ({ doc: 'crash', data })));
  say('appended ' + first + ' ' + count + ' ' + seqs.join(','));
  if (next % 10 < count) {
    const log = await store.load('crash');
    const through = log[Math.floor((log.length - 1) * (next % 3) / 2)].seq;
    await store.compact('crash', through, Y.mergeUpdates(log.filter((e) => e.seq <= through).map((e) => e.data)));
    say('compacted ' + through);
  }
}
`;

interface Round {
  /** Map keys the child reported as appended (their append or batch had resolved). */
  readonly reported: number[];
  readonly seqs: number[];
  /** throughSeq of every compaction the child reported as done. */
  readonly compactions: number[];
}

/** Runs the child until it has reported `appends` resolved appends, then SIGKILLs it. */
async function runAndKill(path: string, appends: number, onThread: string): Promise<Round> {
  const packageDir = fileURLToPath(new URL('..', import.meta.url));
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=source', '--input-type=module', '-e', CHILD],
    {
      cwd: packageDir,
      env: { ...process.env, SCOPESYNC_CRASH_DB: path, SCOPESYNC_CRASH_THREAD: onThread },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const round: Round = { reported: [], seqs: [], compactions: [] };
  let stderr = '';
  let buffered = '';
  let appendLines = 0;
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  // A bound, not a timing assertion: a wedged child must not hang the run.
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    const exited = new Promise<NodeJS.Signals | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (_code, signal) => resolve(signal));
    });
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        const [kind, a, b, c] = buffered.slice(0, newline).split(' ');
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
        if (kind === 'appended') {
          for (let k = 0; k < Number(b); k++) round.reported.push(Number(a) + k);
          round.seqs.push(...String(c).split(',').map(Number));
          if (++appendLines === appends) child.kill('SIGKILL');
        } else if (kind === 'compacted') {
          round.compactions.push(Number(a));
        }
      }
    });
    const signal = await exited;
    expect(signal, `the child died on its own:\n${stderr}`).toBe('SIGKILL');
    expect(appendLines, `the child stopped early:\n${stderr}`).toBeGreaterThanOrEqual(appends);
    return round;
  } finally {
    clearTimeout(guard);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

describe('SqliteDocStore after SIGKILL', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['on its own connection', ''],
    ['writing on a thread', 'writes'],
    ['checkpointing on a thread', 'checkpoints'],
  ])(
    'keeps every append and compaction it acknowledged, and the log still builds the Yjs document (%s)',
    async (_how, onThread) => {
      const path = join(dir, 'crash.sqlite');
      let acknowledged = 0;
      for (const appends of [90, 123, 157]) {
        const round = await runAndKill(path, appends, onThread);
        expect(round.reported.length).toBeGreaterThan(0);

        const check = new Database(path);
        expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
        check.close();

        const store = new SqliteDocStore({ path });
        try {
          const log = await store.load('crash');
          const seqs = log.map((e) => e.seq);
          expect(seqs).toEqual([...seqs].sort((p, q) => p - q));
          expect(new Set(seqs).size).toBe(seqs.length);
          expect(await store.head('crash')).toBeGreaterThanOrEqual(Math.max(...round.seqs));
          // A reported compaction through T left no entry below T.
          expect(seqs[0]).toBeGreaterThanOrEqual(Math.max(0, ...round.compactions));

          const doc = new Y.Doc();
          for (const e of log) Y.applyUpdate(doc, e.data);
          expect(doc.store.pendingStructs, 'an update lost its predecessor').toBeNull();
          expect(doc.store.pendingDs).toBeNull();
          const map = doc.getMap<number>('m');
          for (const k of round.reported) expect(map.get(`k${k}`), `acknowledged key k${k}`).toBe(k);
          // Nothing half-applied or out of order: exactly keys 0..n-1 (the child may have finished
          // appends it had no time to report, but never one with a gap before it).
          const n = map.size;
          expect([...map.keys()].sort()).toEqual(Array.from({ length: n }, (_, k) => `k${k}`).sort());
          expect(n).toBeGreaterThanOrEqual(Math.max(...round.reported) + 1);
          expect(n).toBeGreaterThan(acknowledged);
          expect(doc.getText('t').length).toBeGreaterThan(0);
          acknowledged = n;
        } finally {
          await store.close();
        }
      }
    },
  );
});
