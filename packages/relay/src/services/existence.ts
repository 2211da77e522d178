import { type Address, type Caller, decide } from '@scopesync/core';

/**
 * Whether `caller` could create the object at `address` if it were absent. When it could, an
 * object that exists but is hidden from the caller must answer exactly like an absent one
 * (docs/security.md, "Existence"): the caller would otherwise learn that someone else holds
 * the id, or that a hidden draft is there, without doing anything.
 */
export function couldCreate(caller: Caller, address: Address): boolean {
  if (caller.kind === 'runtime') return false; // the runtime sees everything: nothing to hide
  return decide({ caller, action: 'write', address, object: null }).allowed;
}
