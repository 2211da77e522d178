import { SyncError } from '@scopesync/core';
import { checkU32 } from './bytes.ts';
import { checkDocKey, createDocKey, type DocKey, rotateDocKey } from './doc-key.ts';
import type { DocKeyring } from './doc-keyring.ts';

/** Options of {@link MemoryDocKeyring}. */
export interface MemoryDocKeyringOptions {
  /** Initial {@link DocKeyring.minEpoch}; default 0 (accept every epoch). */
  readonly minEpoch?: number;
}

const slot = (keyId: string, epoch: number): string => `${epoch}:${keyId}`;

/** A {@link DocKeyring} in memory: the keys of one document, the newest epoch current. */
export class MemoryDocKeyring implements DocKeyring {
  readonly #keys = new Map<string, DocKey>();
  #current: DocKey | undefined;
  #minEpoch: number;

  constructor(keys: Iterable<DocKey> = [], options: MemoryDocKeyringOptions = {}) {
    this.#minEpoch = checkU32(options.minEpoch ?? 0, 'minEpoch');
    for (const key of keys) this.add(key);
  }

  /** A keyring holding one fresh key at the first epoch: a new encrypted document. Requires `ready()`. */
  static create(options: MemoryDocKeyringOptions = {}): MemoryDocKeyring {
    return new MemoryDocKeyring([createDocKey()], options);
  }

  /** {@inheritDoc DocKeyring.minEpoch} */
  get minEpoch(): number {
    return this.#minEpoch;
  }

  /** {@inheritDoc DocKeyring.current} */
  current(): DocKey {
    if (this.#current === undefined) throw new SyncError('NotFound', 'the keyring holds no document key');
    return this.#current;
  }

  /** {@inheritDoc DocKeyring.get} */
  get(keyId: string, epoch: number): DocKey | undefined {
    return this.#keys.get(slot(keyId, epoch));
  }

  /** Adds a key (unwrapped from storage or opened from a grant); a newer epoch becomes current. */
  add(key: DocKey): void {
    checkDocKey(key);
    this.#keys.set(slot(key.id, key.epoch), key);
    if (this.#current === undefined || key.epoch > this.#current.epoch) this.#current = key;
  }

  /**
   * Makes a next-epoch key current and returns it (wrap it and seal it to the remaining members).
   * Older keys stay so the log written before the rotation still opens; call {@link requireEpoch}
   * once a snapshot under the new epoch has replaced that log. Requires `ready()`.
   */
  rotate(): DocKey {
    const next = rotateDocKey(this.current());
    this.add(next);
    return next;
  }

  /** Refuses envelopes under any epoch below `epoch` from now on. Never lowers the minimum. */
  requireEpoch(epoch: number): void {
    checkU32(epoch, 'epoch');
    this.#minEpoch = Math.max(this.#minEpoch, epoch);
  }

  /** Every key held, oldest epoch first: what the client wraps and persists. */
  keys(): DocKey[] {
    return [...this.#keys.values()].sort((a, b) => a.epoch - b.epoch);
  }
}
