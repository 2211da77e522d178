import { MemoryDocStore, parseDocName, type StoredEntry, SyncError } from '@scopesync/core';
import { MemoryRelayStore } from '@scopesync/relay';
import { afterEach, expect, it } from 'vitest';
import { startQuietRelay } from './support/quiet-relay.ts';

// Regression test from the chaos suite (issue #16, PostgreSQL stopped): a client subscribes
// while the relay's store is down, so the relay cannot load the document and ends that one
// subscription (error with ref 0, Unavailable) while the socket — shared by every document of
// the client — stays up. The client used to wait for "the next socket" to subscribe again:
// online, nothing pending, and blind to every later edit of the document.

/** A document store whose reads fail while `down` (a stopped database). */
class DownStore extends MemoryDocStore {
  down = false;
  refusals = 0;

  #check(): void {
    if (!this.down) return;
    this.refusals += 1;
    throw new SyncError('Unavailable', 'cannot reach the database');
  }

  override async head(doc: string): Promise<number> {
    this.#check();
    return super.head(doc);
  }

  override async load(doc: string, sinceSeq?: number, limit?: number): Promise<StoredEntry[]> {
    this.#check();
    return super.load(doc, sinceSeq, limit);
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Resolves once `check()` holds, or rejects after `ms`: a bound, not a speed check. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

it('a subscription the relay ended because its store was down is made again on the same socket', async () => {
  const docs = new DownStore();
  const { open } = await startQuietRelay({ relayStore: new MemoryRelayStore(), docStore: docs }, cleanups);
  const name = 'PUBLIC_RW/_/store-down-at-subscribe';

  const reader = await open();
  docs.down = true;
  const copy = reader.doc(name);
  const ended = new Promise<string>((resolve) => copy.on('error', (error) => resolve(error.kind)));
  copy.whenSynced.catch(() => undefined);
  expect(await ended).toBe('Unavailable');
  expect(docs.refusals).toBeGreaterThan(0);
  docs.down = false;

  // Another client writes once the store is back: the reader, still on its first socket, gets it.
  const writer = await open();
  const pad = writer.doc(name);
  await pad.whenSynced;
  await pad.transact((d) => d.getText('t').insert(0, 'after the outage'));
  await pad.whenAcked();
  await until(
    () => copy.doc.getText('t').toString() === 'after the outage',
    15_000,
    'the reader got the edit',
  );
}, 30_000);

/** A relay store whose every call fails with Unavailable while `state.down` (a stopped database). */
function downRelayStore(state: { down: boolean }): MemoryRelayStore {
  const store = new MemoryRelayStore();
  return new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (state.down) return Promise.reject(new SyncError('Unavailable', 'cannot reach the database'));
        return value.apply(target, args);
      };
    },
  });
}

it('a subscription whose access could not be checked again while the store was down is resumed, not revoked', async () => {
  const state = { down: false };
  const { relay, open } = await startQuietRelay(
    { relayStore: downRelayStore(state), docStore: new MemoryDocStore() },
    cleanups,
  );
  const name = 'PUBLIC_RW/_/access-check-store-down';
  const writer = await open();
  const pad = writer.doc(name);
  await pad.whenSynced;
  await pad.transact((d) => d.getText('t').insert(0, 'before'));
  await pad.whenAcked();
  const reader = await open();
  const copy = reader.doc(name);
  await copy.whenSynced;
  await until(() => copy.doc.getText('t').toString() === 'before', 15_000, 'the reader synced');

  // An access change arrives while the store is down: the relay cannot decide again.
  const told: string[] = [];
  copy.on('error', (error) => told.push(error.kind));
  copy.on('permission', (event) => told.push(`permission ${event.access}`));
  state.down = true;
  await relay.relay.bus.publish({ type: 'access-changed', name: parseDocName(name).name, cause: 'flags' });
  await until(() => told.length > 0, 15_000, 'the reader was told');
  state.down = false;
  // Not a revocation (before the fix: `permission none`, the copy dropped, never again synced).
  expect(told[0]).toBe('Unavailable');
  await pad.transact((d) => d.getText('t').insert(d.getText('t').length, ' after'));
  await pad.whenAcked();
  await until(() => copy.doc.getText('t').toString() === 'before after', 15_000, 'the reader got the edit');
}, 60_000);
