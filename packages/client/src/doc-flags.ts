// The object flags a client asks for when it first writes a doc.
import type { ReadFlag, WriteFlag } from '@scopesync/core';

/** Object flags a doc is created with (or narrowed to) when this client first writes it. */
export interface DocFlags {
  readonly read?: ReadFlag | undefined;
  readonly write?: WriteFlag | undefined;
}
