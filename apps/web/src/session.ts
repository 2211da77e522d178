import { createClient, DEFAULT_DATABASE_NAME, type SyncClient } from '@scopesync/client';

/**
 * The relay this page talks to: the origin that served it (the relay serves the tour), or
 * `?relay=http://host:port` when the page comes from somewhere else (`vite dev`).
 */
export function relayUrl(): string {
  const override = new URLSearchParams(location.search).get('relay');
  return (override ?? location.origin).replace(/\/+$/, '');
}

/** How to start: with what this browser stored last time, as a new user, with a key, or linked by recovery phrase. */
export type SessionStart =
  | { readonly kind: 'resume' }
  | { readonly kind: 'sign-up'; readonly deviceName: string }
  | { readonly kind: 'key'; readonly apiKey: string }
  | { readonly kind: 'link'; readonly recoveryPhrase: string; readonly deviceName: string };

/**
 * Opens the client. `resume` uses the key this browser stored (encrypted) when it signed up,
 * so a reload — offline too — is the same user; with nothing stored it is a guest.
 */
export function openSession(start: SessionStart): Promise<SyncClient> {
  const url = relayUrl();
  switch (start.kind) {
    case 'resume':
      return createClient({ url });
    case 'sign-up':
      return createClient({ url, deviceName: start.deviceName });
    case 'key':
      return createClient({ url, apiKey: start.apiKey });
    case 'link':
      // Another device of an existing user: same keys (so the private notes open), own API key.
      return createClient({ url, recoveryPhrase: start.recoveryPhrase, deviceName: start.deviceName });
  }
}

/** True when the client is a registered device rather than a guest. */
export function isSignedUp(client: SyncClient): boolean {
  return client.userId !== undefined;
}

/**
 * Forgets this device: closes the client and deletes its database (documents, outbox, the
 * stored API key and the wrapped root seed). What was synced stays on the relay; unsynced edits are lost, which is why the
 * caller asks first.
 */
export async function forgetDevice(client: SyncClient): Promise<void> {
  await client.close();
  await new Promise<void>((resolve, reject) => {
    const request = indexedDB.deleteDatabase(DEFAULT_DATABASE_NAME);
    request.onsuccess = () => resolve();
    request.onerror = () => reject(request.error);
    // Another tab holds the database open: the delete completes once it closes.
    request.onblocked = () => resolve();
  });
}
