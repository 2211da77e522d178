import type { AuditEntry, SyncClient } from '@scopesync/client';
import { isUserId, SyncError } from '@scopesync/core';
import { relayUrl } from './session.ts';

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

/** The audit entries about my data, newest first (the relay only returns entries whose target is me). */
export async function myAuditEntries(client: SyncClient, limit = 200): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  let after: number | undefined;
  // Pages come oldest first; a few pages cover a tour's worth of activity.
  for (let page = 0; page < 20; page++) {
    const answer = await client.audit(after === undefined ? { limit } : { limit, after });
    entries.push(...answer.entries);
    if (answer.next === null) break;
    after = answer.next;
  }
  return entries.reverse();
}

export type { AuditEntry };
