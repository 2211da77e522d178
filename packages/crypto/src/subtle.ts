import { SyncError } from '@scopesync/core';

/**
 * WebCrypto's SubtleCrypto from `globalThis.crypto` (browsers in a secure context, Node ≥ 20).
 * Throws Unavailable where it is missing, e.g. a page served over plain http from a LAN address.
 */
export function subtleCrypto(): SubtleCrypto {
  const subtle = (globalThis as { crypto?: Crypto }).crypto?.subtle;
  if (subtle === undefined) {
    throw new SyncError(
      'Unavailable',
      'WebCrypto (crypto.subtle) is not available: it needs a secure context',
    );
  }
  return subtle;
}
