import { type DocName, type SubscribeMode, SyncError } from '@scopesync/core';

/**
 * Throws SyncError('BadRequest') unless the document may be used on the channel `mode`:
 * USER_PRIVATE documents are end-to-end encrypted, so never plaintext; only they and blobs
 * may be encrypted.
 */
export function assertChannel(name: DocName, mode: SubscribeMode): void {
  if (mode === 'plaintext') {
    if (name.startsWith('USER_PRIVATE/')) {
      throw new SyncError(
        'BadRequest',
        'USER_PRIVATE documents are end-to-end encrypted: use the encrypted channel',
      );
    }
  } else if (!name.startsWith('USER_PRIVATE/') && !name.startsWith('blob/')) {
    throw new SyncError('BadRequest', 'only USER_PRIVATE documents and blobs use the encrypted channel');
  }
}

/** Throws unless `bytes` is a non-empty envelope (or snapshot, as `what` says) of at most `maxBytes`. */
export function assertEnvelopeSize(bytes: Uint8Array, what: string, maxBytes: number): void {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) {
    throw new SyncError('InvalidMessage', `empty ${what}`);
  }
  if (bytes.length > maxBytes) {
    throw new SyncError('TooLarge', `${what} of ${bytes.length} bytes exceeds ${maxBytes}`);
  }
}
