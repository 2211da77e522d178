// A Node client of the auth-server example: signs in to the app, then syncs with the relay using
// the app's token (refreshed through the app's /login when it expires).
//
//   npx tsx --conditions=source examples/auth-server/client.ts http://127.0.0.1:3000 alice alice-password
import { pathToFileURL } from 'node:url';
import { createClient, memoryClientStore } from '@scopesync/client';
import { WebSocket } from 'ws';

/** Signs in as `username`, writes their public profile through the relay and reads it back over HTTP. */
export async function runClient(
  appUrl: string,
  username: string,
  password: string,
): Promise<{ userId: string; profile: unknown }> {
  // The app's own login; the client calls it again whenever it needs a fresh token.
  const login = async (): Promise<string> => {
    const res = await fetch(`${appUrl}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    if (!res.ok) throw new Error(`login failed: ${res.status}`);
    return ((await res.json()) as { token: string }).token;
  };
  const relayUrl = `${appUrl}/scopesync`;
  const client = await createClient({ url: relayUrl, token: login, WebSocket, store: memoryClientStore() });
  try {
    const userId = client.userId;
    if (userId === undefined) throw new Error('the relay did not confirm the user');
    const profile = client.doc(`USER_PUBLIC/${userId}/profile`);
    await profile.whenSynced;
    await profile.transact((doc) => doc.getMap('data').set('name', username));
    // Resolves once the relay has stored the edit durably.
    await profile.whenAcked();
    // Everyone may read a USER_PUBLIC object: read it back over HTTP, with a fresh token.
    const res = await fetch(`${relayUrl}/userdata/${userId}/USER_PUBLIC/profile`, {
      headers: { authorization: `Bearer ${await login()}` },
    });
    const answer = (await res.json()) as { value?: unknown };
    profile.release();
    return { userId, profile: answer.value };
  } finally {
    await client.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [appUrl = 'http://127.0.0.1:3000', username = 'alice', password = 'alice-password'] =
    process.argv.slice(2);
  const { userId, profile } = await runClient(appUrl, username, password);
  console.log(`signed in as ${username} (relay user ${userId}); profile on the relay:`, profile);
}
