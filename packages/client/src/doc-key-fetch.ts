/**
 * Fetching one encrypted doc's keys from the relay: a private doc's keys as this user's devices
 * stored them (wrapped under the KEK), a blob's as grants the owner sealed to this user and
 * signed into the member list.
 */

import type { Address } from '@scopesync/core';
import { type DocKey, type MemoryDocKeyring, openGrant, unwrapDocKey } from '@scopesync/crypto';
import { sameBytes } from './base64.ts';
import { keySlot } from './doc-key-record.ts';
import type { DocKeysContext } from './doc-keys.ts';
import type { DocMembership } from './doc-membership.ts';

/** Adds the keys the relay holds for this user and one doc to the doc's keyring. */
export class DocKeyFetch {
  readonly #ctx: DocKeysContext;
  readonly #address: Address;
  readonly #docName: string;
  readonly #keyring: MemoryDocKeyring;
  readonly #membership: DocMembership;
  /** `epoch:id` of the keys stored on the relay: shared with the doc's keys, which upload the others. */
  readonly #uploaded: Set<string>;
  /** Writes the doc's keys record. */
  readonly #persist: () => Promise<void>;
  /** Key slots a relay refresh did not find: not asked for again in this session. */
  readonly #missing = new Set<string>();
  #refreshing: Promise<boolean> | undefined;

  constructor(
    ctx: DocKeysContext,
    address: Address,
    keyring: MemoryDocKeyring,
    membership: DocMembership,
    uploaded: Set<string>,
    persist: () => Promise<void>,
  ) {
    this.#ctx = ctx;
    this.#address = address;
    this.#docName = address.name;
    this.#keyring = keyring;
    this.#membership = membership;
    this.#uploaded = uploaded;
    this.#persist = persist;
  }

  /** Fetches the keys once for a key slot the keyring lacks; a slot that did not come is not asked for again. */
  async refreshFor(header: { keyId: string; epoch: number }): Promise<void> {
    const wanted = keySlot({ id: header.keyId, epoch: header.epoch });
    // A key a refresh did not bring is not asked for again: a forged or damaged envelope must
    // not turn every read into a request.
    if (this.#missing.has(wanted)) return;
    await this.refreshKeys();
    if (!this.#keyring.get(header.keyId, header.epoch)) this.#missing.add(wanted);
  }

  /**
   * Adds the keys the relay holds for this user and doc: the owner's wrapped keys of a private
   * doc, or the grants of a blob (to a sharee, or the owner's own). True when any was new.
   * Concurrent calls share one request.
   */
  refreshKeys(): Promise<boolean> {
    this.#refreshing ??= this.#refreshKeys().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refreshKeys(): Promise<boolean> {
    const { api, identity } = this.#ctx;
    const found: DocKey[] = [];
    if (this.#address.kind === 'doc') {
      for (const wrapped of await api.docKeys(this.#docName)) {
        // Wrapped under our KEK by one of our devices; one that does not open is skipped.
        try {
          found.push(unwrapDocKey(identity.kek, this.#docName, wrapped));
        } catch {}
      }
    } else {
      const blobId = this.#address.blobId;
      const membership = this.#membership;
      membership.owner ??= await api.blobOwner(blobId);
      if (membership.owner === undefined) return false; // a blob nobody has written yet
      await membership.refreshMembers();
      // The owner keys pinned on first use (and the rotations they signed), never the one the
      // relay hands out today.
      const ownerKeys = await membership.ownerKeys(membership.owner);
      for (const { grant, sealedKey } of await api.myGrants(blobId)) {
        try {
          const opened = openGrant({
            grant,
            sealedKey,
            recipient: identity,
            blobId,
            isGrantorAllowed: (key) => ownerKeys.some((k) => sameBytes(k, key)),
          });
          // Only keys the owner signed into the member list: a planted grant names no listed pair.
          if (
            !membership.isOwner &&
            !membership.listFor({ epoch: opened.docKey.epoch, keyId: opened.docKey.id })
          )
            continue;
          found.push(opened.docKey);
        } catch {}
      }
    }
    let added = false;
    for (const key of found) {
      if (this.#keyring.get(key.id, key.epoch)) continue;
      this.#keyring.add(key);
      // The relay already has it: no need to store it there again.
      this.#uploaded.add(keySlot(key));
      added = true;
    }
    if (added || this.#address.kind === 'blob') await this.#persist();
    return added;
  }
}
