import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClientOptions, createClient, memoryClientStore, type SyncClient } from '@scopesync/client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * Chaos finding 12 (docs/reliability.md): a client on a memory store keeps nothing across a
 * restart but its API key and recovery phrase. Restarted while its relay is down, it writes to
 * its USER_PRIVATE doc offline, reconnects, and gets its edits acknowledged: a fresh device of
 * the same user must then read every acknowledged edit, before and after the restart.
 */

const ITEMS = 'items';

let relays: TestRelay[] = [];
let clients: SyncClient[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const r of relays) await r.close();
  relays = [];
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A relay on `dataDir` (kept across its restarts), on `port` when given. */
async function relayOn(dataDir: string, port?: number): Promise<TestRelay> {
  const relay = await startTestRelay({ rateLimit: false, dataDir, ...(port === undefined ? {} : { port }) });
  relays.push(relay);
  return relay;
}

async function stop(relay: TestRelay): Promise<void> {
  await relay.close();
  relays = relays.filter((r) => r !== relay);
}

/** A client on a fresh memory store; `registered` reports the API key a new device gets. */
async function launch(url: string, options: Partial<ClientOptions>, registered?: (key: string) => void) {
  const c = await createClient({
    url,
    WebSocket,
    store: memoryClientStore(),
    backoff: { initialMs: 20, maxMs: 200 },
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      if (init?.method === 'POST' && new URL(String(input)).pathname === '/keys' && response.ok) {
        const answer = (await response.clone().json()) as { key?: unknown };
        if (typeof answer.key === 'string') registered?.(answer.key);
      }
      return response;
    },
    ...options,
  });
  clients.push(c);
  return c;
}

async function quit(c: SyncClient): Promise<void> {
  await c.close();
  clients = clients.filter((x) => x !== c);
}

/** Appends `tokens` to the doc's item list, one edit each, and waits for the relay's ack. */
async function write(c: SyncClient, name: string, tokens: string[]): Promise<void> {
  const handle = c.doc(name);
  await handle.whenLoaded;
  for (const token of tokens) await handle.transact((d) => d.getArray<string>(ITEMS).push([token]));
}

const items = (c: SyncClient, name: string): string[] => c.doc(name).doc.getArray<string>(ITEMS).toArray();

describe('a memory-store client restarted while its relay is down (finding 12)', () => {
  it('knowing its user, it writes offline under a key of its own, and a fresh device reads every edit', async () => {
    const { relay, port, dataDir, apiKey, phrase, me, name } = await firstIncarnation();
    // The memory client restarts from nothing (its user confirmed by the relay), and the relay
    // goes down before it opens the doc: it cannot fetch the doc's key, makes one of its own,
    // and writes under it offline.
    const second = await launch(relay.url, { apiKey, recoveryPhrase: phrase });
    expect(second.userId).toBe(me);
    await stop(relay);
    await write(second, name, ['b1', 'b2']);

    const back = await relayOn(dataDir, port);
    const handle = second.doc(name);
    await handle.whenAcked();
    await write(second, name, ['b3']);
    await handle.whenAcked();
    const all = ['a1', 'a2', 'a3', 'b1', 'b2', 'b3'];
    await vi.waitFor(() => expect(sorted(items(second, name))).toEqual(all), { timeout: 15_000 });
    expect(await readAsNewDevice(back.url, apiKey, phrase, name, all)).toEqual(all);
  });

  it('not knowing its user yet, its offline edits fail and leave nothing behind that later acked edits build on', async () => {
    const { relay, port, dataDir, apiKey, phrase, me, name } = await firstIncarnation();
    // Restarted while its relay is down: its API key cannot be confirmed, so its user (and the
    // keys of its private doc) is unknown. Edits made now cannot be sealed, so they are not
    // stored: they fail, and must not stay in the doc either.
    await stop(relay);
    const second = await launch(relay.url, { apiKey, recoveryPhrase: phrase });
    expect(second.userId).toBeUndefined();
    const handle = second.doc(name);
    await handle.whenLoaded;
    const failures: string[] = [];
    for (const token of ['b1', 'b2']) {
      await handle
        .transact((d) => d.getArray<string>(ITEMS).push([token]))
        .catch((error: unknown) => failures.push(String(error)));
    }
    expect(failures).toHaveLength(2);
    // Not durable, never sent: not shown either, and not acknowledged.
    await vi.waitFor(() => expect(items(second, name)).toEqual([]), { timeout: 5_000 });
    await expect(handle.whenAcked()).rejects.toThrow(/registered user/);

    // The relay is back: the client learns its user, reads the doc, and its next edit is acked.
    const back = await relayOn(dataDir, port);
    await vi.waitFor(() => expect(second.userId).toBe(me), { timeout: 15_000 });
    await vi.waitFor(() => expect(sorted(items(second, name))).toEqual(['a1', 'a2', 'a3']), {
      timeout: 15_000,
    });
    await write(second, name, ['b3']);
    await handle.whenAcked();
    const acked = ['a1', 'a2', 'a3', 'b3'];
    expect(sorted(items(second, name))).toEqual(acked);
    // A fresh device of the same user reads every acknowledged edit: b3 was appended after
    // the unstored b2 in the restarted client's doc and could not be placed without it.
    expect(await readAsNewDevice(back.url, apiKey, phrase, name, acked)).toEqual(acked);
  });
});

const sorted = (list: string[]): string[] => [...list].sort();

/** A memory client writes a1..a3 to its private doc, acked, then quits: what it leaves to the harness. */
async function firstIncarnation() {
  const dataDir = await mkdtemp(join(tmpdir(), 'scopesync-f12-'));
  dirs.push(dataDir);
  const relay = await relayOn(dataDir);
  const port = Number(new URL(relay.url).port);
  let apiKey: string | undefined;
  const first = await launch(relay.url, { deviceName: 'memory' }, (key) => {
    apiKey ??= key;
  });
  const me = first.userId as string;
  const name = `USER_PRIVATE/${me}/notes`;
  const phrase = await first.encryption.exportRecoveryPhrase();
  await write(first, name, ['a1', 'a2', 'a3']);
  await first.doc(name).whenAcked();
  if (apiKey === undefined) throw new Error('the device registered no API key');
  await quit(first);
  return { relay, port, dataDir, apiKey, phrase, me, name };
}

/**
 * The doc's items as another device of the user reads them (fresh memory store, from the
 * recovery phrase), once it holds `expected` or after a bounded wait; no entry may be refused.
 */
async function readAsNewDevice(
  url: string,
  apiKey: string,
  phrase: string,
  name: string,
  expected: string[],
): Promise<string[]> {
  const reader = await launch(url, { apiKey, recoveryPhrase: phrase });
  const refused: string[] = [];
  const handle = reader.doc(name);
  handle.on('error', (error) => refused.push(String(error)));
  await handle.whenSynced;
  await vi
    .waitFor(() => expect(sorted(items(reader, name))).toEqual(expected), { timeout: 5_000 })
    .catch(() => undefined);
  expect(refused).toEqual([]);
  const read = sorted(items(reader, name));
  await quit(reader);
  return read;
}
