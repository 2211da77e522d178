import type { RelayStoreTx, RetiredKeyRecord } from '@scopesync/core';
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
  const retired = (await rotationChain(store, userId)).flatMap((r) => {
    const key = publicKeyBytes(r.signPk);
    return key ? [key] : [];
  });
  return [...retired, current];
}

/**
 * A user's retirements in chain order, oldest first: each record's next key is the following
 * record's retired key (the store's time order, which two rotations within one millisecond could
 * leave ambiguous, is only the starting point).
 */
export async function rotationChain(
  store: Pick<RelayStoreTx, 'listRetiredKeys'>,
  userId: string,
): Promise<RetiredKeyRecord[]> {
  const records = await store.listRetiredKeys(userId);
  const bySignPk = new Map(records.map((r) => [r.signPk, r]));
  const nexts = new Set(records.map((r) => r.nextSignPk));
  let at = records.find((r) => !nexts.has(r.signPk));
  const chain: RetiredKeyRecord[] = [];
  while (at && chain.length < records.length) {
    chain.push(at);
    at = bySignPk.get(at.nextSignPk);
  }
  // A chain that does not link up (never made by this relay) is served as stored.
  return chain.length === records.length ? chain : records;
}
