import type { RelayStoreTx } from '@scopesync/core';
import { publicKeyBytes } from './credentials.ts';

/**
 * A user's signing keys, oldest first: every key an identity rotation retired (the relay checked
 * each statement when it accepted it), then the registered one. Versions of a blob's member list
 * signed by an earlier key of the owner stay valid after the owner rotates (docs/encryption.md).
 * Empty when the user has no registered key.
 */
export async function signKeyHistory(
  store: Pick<RelayStoreTx, 'getUser' | 'listRetiredKeys'>,
  userId: string,
): Promise<Uint8Array[]> {
  const current = publicKeyBytes((await store.getUser(userId))?.signPk ?? null);
  if (!current) return [];
  const retired = (await store.listRetiredKeys(userId)).flatMap((r) => {
    const key = publicKeyBytes(r.signPk);
    return key ? [key] : [];
  });
  return [...retired, current];
}
