import { createClient, memoryClientStore, type SyncClient } from '@scopesync/client';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { useTestRelay } from './support/start-test-relay.ts';

/* "Who read my profile": the client's audit API over the real relay's hash-chained log. */

const t = useTestRelay();
const clients: SyncClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

async function client(apiKey: string): Promise<SyncClient> {
  const c = await createClient({ url: t.url, apiKey, WebSocket, store: memoryClientStore() });
  clients.push(c);
  return c;
}

describe('client.audit()', () => {
  it('shows the owner who read their profile, and nobody else’s entries', async () => {
    const aliceUser = await t.user('alice');
    const bobUser = await t.user('bob');
    const alice = await client(aliceUser.key);
    const bob = await client(bobUser.key);
    await alice.userData.set('USER_PUBLIC', aliceUser.userId, 'profile', { name: 'Alice' });
    await alice.doc(`USER_PUBLIC/${aliceUser.userId}/profile`).whenAcked();

    const read = await t.api('GET', `/userdata/${aliceUser.userId}/USER_PUBLIC/profile`, {
      key: bobUser.key,
    });
    expect(read.status).toBe(200);

    const page = await alice.audit();
    const byBob = page.entries.filter((e) => e.accessor === bobUser.userId && e.key === 'profile');
    expect(byBob).toContainEqual(
      expect.objectContaining({ target: aliceUser.userId, action: 'read', result: 'ok', channel: 'http' }),
    );
    // Every entry is about alice's data, chained by hash.
    expect(page.entries.every((e) => e.target === aliceUser.userId)).toBe(true);
    expect(page.entries.every((e) => e.hash.length > 0)).toBe(true);
    // Bob may not read alice's audit entries.
    await expect(bob.audit({ target: aliceUser.userId })).rejects.toMatchObject({ kind: 'Forbidden' });
  });
});
