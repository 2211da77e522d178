// The object flags a client asks for when it first writes a doc, and their scope defaults.
import { type Address, type ReadFlag, SCOPE_FLAGS, type WriteFlag } from '@scopesync/core';

/** Object flags a doc is created with (or narrowed to) when this client first writes it. */
export interface DocFlags {
  readonly read?: ReadFlag | undefined;
  readonly write?: WriteFlag | undefined;
}

/** The scope default flags of an address, for callers that want to show them. */
export function defaultFlags(address: Address): { read: ReadFlag; write: WriteFlag } {
  return address.kind === 'blob' ? { read: 1, write: 1 } : { ...SCOPE_FLAGS[address.scope].defaults };
}
