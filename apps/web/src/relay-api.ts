import type { SyncClient } from '@scopesync/client';
import { isUserId, SyncError } from '@scopesync/core';
import { relayUrl } from './session.ts';

/** One entry of the relay's audit log, as GET /audit returns it. */
export interface AuditEntry {
  readonly seq: number;
  readonly timestamp: number;
  readonly accessor: string;
  readonly target: string;
  readonly scope: string;
  readonly key: string;
  readonly action: string;
  readonly result: string;
  readonly channel: string;
  readonly reason?: string | undefined;
}

/**
 * Whether a user id is registered on the relay (GET /users/<id>/keys, which anyone may ask).
 * Lets the tour tell "no such user" from "no profile yet". Unavailable when offline.
 */
export async function userExists(userId: string): Promise<boolean> {
  if (!isUserId(userId)) return false;
  let response: Response;
  try {
    response = await fetch(`${relayUrl()}/users/${encodeURIComponent(userId)}/keys`);
  } catch (error) {
    throw new SyncError('Unavailable', 'the relay is unreachable', { cause: error });
  }
  if (response.status === 404) return false;
  if (!response.ok) throw new SyncError('Unavailable', `the relay answered ${response.status}`);
  return true;
}

/**
 * The audit entries about my data, newest first (GET /audit: the relay only ever returns
 * entries whose target is the caller). The client has no audit API, so this goes through its
 * HTTP helper, which carries the device's key.
 */
export async function myAuditEntries(client: SyncClient, limit = 200): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  let after = 0;
  // Pages come oldest first; a few pages cover a tour's worth of activity.
  for (let page = 0; page < 20; page++) {
    const answer = await client.http.json<{ entries?: AuditEntry[]; next?: number | null }>({
      method: 'GET',
      path: `/audit?limit=${limit}${after ? `&after=${after}` : ''}`,
    });
    entries.push(...(answer.entries ?? []));
    if (typeof answer.next !== 'number') break;
    after = answer.next;
  }
  return entries.reverse();
}
