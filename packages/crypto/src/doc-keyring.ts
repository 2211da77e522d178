import type { DocKey } from './doc-key.ts';

/**
 * The document keys one reader holds for one document. The client keeps them wrapped at rest and
 * unwraps them into an implementation of this (e.g. `MemoryDocKeyring`) when the document opens.
 */
export interface DocKeyring {
  /** The key new envelopes are sealed with: the newest epoch. Throws NotFound when there is none. */
  current(): DocKey;
  /** The key with this id and epoch, or undefined when this reader does not hold it. */
  get(keyId: string, epoch: number): DocKey | undefined;
  /** Envelopes under an epoch below this are refused with Conflict (0 accepts every epoch). */
  readonly minEpoch: number;
}
