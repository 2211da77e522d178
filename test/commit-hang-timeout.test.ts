import { randomBytes } from 'node:crypto';
import { MemoryRelayStore } from '@scopesync/relay';
import { openPostgresPool, PostgresDocStore } from '@scopesync/store-postgres';
import type pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { startQuietRelay } from './support/quiet-relay.ts';
import { CLUSTER_DATABASE_URL } from './support/relay-cluster.ts';

// Chaos issue #16: a commit that never returns. The relay's PostgreSQL backend is frozen
// (SIGSTOP, as a stopped server or a network black hole would leave it): the append the relay
// sent waits in the backend's socket and nothing answers. The relay used to wait forever — the
// writer got neither an ack nor an error, and every later write of that relay queued behind
// it. Now the store gives up within its bound, terminates the frozen backend so that the
// statement cannot commit when it resumes, and the writer gets Unavailable and resends.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Resolves with `promise`, or rejects with `what` once `ms` passed: a bound, not a speed check. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/** The pids of the backends serving `applicationName`. */
async function backendsOf(admin: pg.Pool, applicationName: string): Promise<number[]> {
  const result = await admin.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
    [applicationName],
  );
  return result.rows.map((row) => row.pid);
}

it('a commit whose PostgreSQL backend froze is refused within the bound, resent, and stored once', async () => {
  const schema = `scopesync_hang_${randomBytes(5).toString('hex')}`;
  const applicationName = `scopesync-hang-${randomBytes(4).toString('hex')}`;
  const admin = await openPostgresPool(CLUSTER_DATABASE_URL, {
    max: 1,
    applicationName: 'scopesync-hang-admin',
  });
  cleanups.push(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await admin.end();
  });
  // One connection: the backend the test freezes is the one the next commit runs on.
  const pool = await openPostgresPool(CLUSTER_DATABASE_URL, {
    max: 1,
    applicationName,
    onIdleError: () => undefined,
  });
  cleanups.push(() => pool.end().catch(() => undefined));
  const docStore = await PostgresDocStore.open({ pool, schema, commitTimeoutMs: 1500 });
  cleanups.push(() => docStore.close());
  // The refused commit is logged as an error on purpose; the relay is quiet.
  const { open } = await startQuietRelay({ relayStore: new MemoryRelayStore(), docStore }, cleanups);
  const name = 'PUBLIC_RW/_/commit-hangs';
  const writer = await open();
  const pad = writer.doc(name);
  await pad.whenSynced;
  await pad.transact((d) => d.getText('t').insert(0, 'first '));
  await within(pad.whenAcked(), 10_000, 'the first edit acked');

  const [frozen, ...others] = await backendsOf(admin, applicationName);
  expect(frozen).toBeDefined();
  expect(others).toEqual([]);
  const pid = frozen as number;
  process.kill(pid, 'SIGSTOP');
  let resumed = false;
  const resume = (): void => {
    if (resumed) return;
    resumed = true;
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // Gone already.
    }
  };
  // Never leave a backend of the shared server stopped, whatever fails below.
  cleanups.push(resume);

  const refused = new Promise<string>((resolve) => pad.on('error', (error) => resolve(error.kind)));
  await pad.transact((d) => d.getText('t').insert(d.getText('t').length, 'second'));
  // Before the fix nothing ever answered this write: the bounded wait fails here.
  expect(await within(refused, 15_000, 'the writer refused')).toBe('Unavailable');
  // The resend goes through a new connection while the old backend is still stopped.
  await within(pad.whenAcked(), 15_000, 'the resent edit acked');
  expect(pad.pending).toBe(0);

  // Now the frozen backend runs again: had it not been terminated, it would read the append
  // waiting in its socket and commit it — a second copy of the edit.
  const resumedAt = new Date();
  resume();
  await within(
    (async () => {
      for (;;) {
        const row = await admin.query<{ state: string | null; state_change: Date | null }>(
          'SELECT state, state_change FROM pg_stat_activity WHERE pid = $1',
          [pid],
        );
        const state = row.rows[0];
        if (state === undefined) return; // it exited
        if (state.state === 'idle' && state.state_change !== null && state.state_change > resumedAt) return;
        await new Promise((r) => setTimeout(r, 50));
      }
    })(),
    15_000,
    'the resumed backend settled',
  );
  const entries = await docStore.load(name);
  expect(entries).toHaveLength(2); // "first " and "second", each once

  const reader = await open();
  const copy = reader.doc(name);
  await copy.whenSynced;
  expect(copy.doc.getText('t').toString()).toBe('first second');
}, 60_000);
