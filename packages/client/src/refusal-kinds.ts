import type { ErrorKind } from '@scopesync/core';

/** Error kinds after which a refused write is dropped (it would be refused again); others are retried. */
export const FINAL_REFUSALS: ReadonlySet<ErrorKind> = new Set<ErrorKind>([
  'BadRequest',
  'Unauthorized',
  'Forbidden',
  'NotFound',
  'Conflict',
  // Only once sealing again did not help (the channel re-seals a few times first).
  'KeyRotated',
  'PreconditionFailed',
  'TooLarge',
  'InvalidMessage',
]);

/**
 * Error kinds after which refused edits are sent again on the same socket, with backoff: the
 * relay or its store failing for now. (KeyChanged waits for the user instead.)
 */
export const TRANSIENT_REFUSALS: ReadonlySet<ErrorKind> = new Set<ErrorKind>([
  'Unavailable',
  'RateLimited',
  'Internal',
]);
