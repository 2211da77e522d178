import { type Address, SyncError } from '@scopesync/core';

/**
 * The error of a doc the relay took away from a handle that never had anything of it from the
 * relay: every edit it holds is this device's own, unsent. For a blob that means the id belongs
 * to someone else (another user created it first, or it was theirs all along): the relay never
 * says which, so that ids do not tell who has what (docs/security.md, "Existence"). The edits
 * stay in the local store and in the handle's doc; copy them into a blob of your own (a fresh
 * id from `client.blobs.create()`).
 */
export function deniedDocError(address: Address, reason: string): SyncError {
  if (address.kind === 'blob') {
    return new SyncError(
      'Conflict',
      `blob id ${address.blobId} is taken by someone else; your edits were not sent and stay on this device (create the blob under a new id: client.blobs.create())`,
    );
  }
  return new SyncError(
    'Forbidden',
    `the relay refused ${address.name}${reason ? ` (${reason})` : ''}; your unsent edits stay on this device`,
  );
}

/** A raw upload (`blobs.put`) that would have created a blob under an id someone else holds. */
export function takenBlobIdError(blobId: string): SyncError {
  return new SyncError(
    'Conflict',
    `blob id ${blobId} is taken by someone else; nothing was uploaded (use a new id: client.blobs.newId())`,
  );
}
