import { DATA_MAP, type SyncClient } from '@scopesync/client';

/**
 * How the tour names a user to others: the name on their public profile, else the start of
 * their user id. Reads the local copy of the profile (it works offline).
 */
export async function displayName(client: SyncClient, userId: string): Promise<string> {
  const handle = client.doc(`USER_PUBLIC/${userId}/profile`);
  try {
    await handle.whenLoaded;
    const name = handle.doc.getMap(DATA_MAP).get('name');
    return typeof name === 'string' && name.trim() ? name.trim() : userId.slice(0, 9);
  } catch {
    // No readable profile: the short user id is a fine label.
    return userId.slice(0, 9);
  } finally {
    await handle.release();
  }
}
