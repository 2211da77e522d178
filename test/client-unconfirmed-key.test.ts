import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type SyncClient } from '@scopesync/client';
import { SqliteDocStore, SqliteKeyValueStore } from '@scopesync/store-sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { servedItems } from './chaos/relay-reads.ts';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * A client started with an API key while its relay is down and nothing is cached does not know
 * its user id yet (docs/reliability.md, finding "crash child refused its own write"). It must
 * not refuse the user's own writes as someone else's: it keeps them in its outbox, learns its
 * id once the relay answers, and only then sends them. The chaos suite's crash child hit this:
 * started while a relay was killed, it refused a write to its own USER_PUBLIC doc and exited.
 */

const dirs: string[] = [];
let relays: TestRelay[] = [];
let clients: SyncClient[] = [];
afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const r of relays) await r.close();
  relays = [];
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

async function open(url: string, apiKey: string, path: string): Promise<SyncClient> {
  const client = await createClient({
    url,
    apiKey,
    WebSocket,
    store: { docs: new SqliteDocStore({ path }), kv: new SqliteKeyValueStore({ path }) },
    backoff: { initialMs: 20, maxMs: 100 },
  });
  clients.push(client);
  return client;
}

describe('a client given an API key while its relay is down, nothing cached', () => {
  it('keeps its own writes, learns its id once the relay is up, and delivers them', async () => {
    // A user registered on a relay that then goes down (its data dir stays).
    const dataDir = tempDir('scopesync-unconfirmed-relay-');
    const first = await startTestRelay({ rateLimit: false, dataDir });
    const port = Number(new URL(first.url).port);
    const me = await first.relay.runtime.createUser({ deviceName: 'crash' });
    const other = await first.relay.runtime.createUser({ deviceName: 'someone else' });
    await first.close();

    const db = join(tempDir('scopesync-unconfirmed-client-'), 'client.sqlite');
    const app = await open(first.url, me.key, db);
    expect(app.userId).toBeUndefined();
    const mine = app.doc(`USER_PUBLIC/${me.userId}/crash`);
    await mine.whenLoaded;
    // Before the fix: Forbidden ("only the owner … write USER_PUBLIC"), as if it were another user.
    await mine.transact((d) => d.getArray<string>('items').push(['k.1']));
    await mine.transact((d) => d.getArray<string>('items').push(['k.2']));
    expect(mine.pending).toBeGreaterThan(0);

    const relay = await startTestRelay({ rateLimit: false, dataDir, port });
    relays.push(relay);
    await mine.whenAcked();
    expect(app.userId).toBe(me.userId);
    expect(await servedItems(relay.url, other.key, `USER_PUBLIC/${me.userId}/crash`)).toEqual(['k.1', 'k.2']);
    // Now that the id is known, someone else's doc is refused at once again.
    const theirs = app.doc(`USER_PUBLIC/${other.userId}/crash`);
    await expect(theirs.transact((d) => d.getArray<string>('items').push(['x']))).rejects.toMatchObject({
      kind: 'Forbidden',
    });

    // The id is cached with the key: a later start with the relay down knows it at once.
    await app.close();
    clients = [];
    await relay.close();
    relays = [];
    const again = await open(first.url, me.key, db);
    expect(again.userId).toBe(me.userId);
  });

  it('sends a held write to someone else’s doc once the relay is up, and the relay refuses it', async () => {
    const dataDir = tempDir('scopesync-unconfirmed-relay-');
    const first = await startTestRelay({ rateLimit: false, dataDir });
    const port = Number(new URL(first.url).port);
    const me = await first.relay.runtime.createUser({ deviceName: 'me' });
    const other = await first.relay.runtime.createUser({ deviceName: 'other' });
    const created = await first.api('POST', `/userdata/${other.userId}/USER_PUBLIC/notes`, {
      key: other.key,
      body: { value: { title: 'mine' } },
    });
    expect(created.status).toBe(200);
    await first.close();

    const app = await open(first.url, me.key, join(tempDir('scopesync-unconfirmed-client-'), 'c.sqlite'));
    const theirs = app.doc(`USER_PUBLIC/${other.userId}/notes`);
    await theirs.whenLoaded;
    // Not refused locally: the client cannot tell yet whose doc it is.
    await theirs.transact((d) => d.getArray<string>('items').push(['forged']));
    const relay = await startTestRelay({ rateLimit: false, dataDir, port });
    relays.push(relay);
    await expect(theirs.whenAcked()).rejects.toMatchObject({ kind: 'Forbidden' });
    expect(await servedItems(relay.url, other.key, `USER_PUBLIC/${other.userId}/notes`)).not.toContain(
      'forged',
    );
  });
});
