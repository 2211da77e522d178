import { timingSafeEqual } from 'node:crypto';
import type { Locks } from '@scopesync/core';
import {
  type Caller,
  type DocName,
  isSyncError,
  KeyedMutex,
  type ObjectRecord,
  parseDocName,
  type RelayStore,
  SyncError,
} from '@scopesync/core';
import { ready, verifyEnvelopeSignature, verifyMemberListChain } from '@scopesync/crypto';
import { publicKeyBytes } from './credentials.ts';
import type { EnvelopeVerifier } from './documents/doc-hub.ts';
import { signKeyHistory } from './key-history.ts';
import type {} from './node-webcrypto-types.ts';

/** Options of {@link createEnvelopeVerifier}. */
export interface EnvelopePolicyOptions {
  /** Where users (their registered signing keys), object metadata and shares are. */
  readonly store: RelayStore;
  /** Serialises raising a document's minimum epoch. Default: a private one. */
  readonly mutex?: Locks;
}

/**
 * The relay's check of every encrypted envelope and snapshot before the DocHub stores it
 * (docs/encryption.md). The relay cannot decrypt, but it can insist that
 *
 * - the envelope is well formed (BadRequest) and its Ed25519 signature verifies (Forbidden);
 * - it was sealed for this document: the header's doc-name hash matches (Forbidden), so an
 *   envelope cannot be replayed into another document;
 * - its author key is the signing key registered for the user who sends it, and a user id in
 *   the header names that user (Forbidden);
 * - that user may write: the owner of a USER_PRIVATE namespace; the owner or a read_write
 *   sharee of an encrypted blob (Forbidden for anyone else, read_only sharees included);
 * - its key epoch is not below the document's minimum (KeyRotated). A snapshot under a newer
 *   epoch — the owner rotating the key — raises the minimum; only the owner may do that;
 * - an encrypted blob: it is sealed under an (epoch, key id) pair the owner-signed member list
 *   names (Forbidden otherwise); without a member list only the owner writes; and only the
 *   owner compacts (snapshots), so a member cannot replace the log with something others
 *   cannot open.
 *
 * The server runtime is authoritative and holds no signing key: its envelopes are checked for
 * form, signature and document only.
 */
export function createEnvelopeVerifier(options: EnvelopePolicyOptions): EnvelopeVerifier {
  const { store } = options;
  const mutex = options.mutex ?? new KeyedMutex();
  const chains = new ChainCache();

  return async (name: DocName, caller: Caller, envelope: Uint8Array): Promise<void> => {
    await ready();
    if (caller.kind === 'runtime') {
      verifyEnvelopeSignature(envelope, () => true, { docName: name });
      return;
    }
    if (caller.kind !== 'user') throw new SyncError('Forbidden', 'only users write encrypted documents');
    const address = parseDocName(name);
    const record = await store.getObject(name);
    let owner: string;
    if (address.kind === 'doc') {
      if (address.scope !== 'USER_PRIVATE') {
        throw new SyncError('BadRequest', `${address.scope} documents are not end-to-end encrypted`);
      }
      owner = address.namespace;
      if (caller.userId !== owner) {
        throw new SyncError('Forbidden', 'only the owner writes a USER_PRIVATE document');
      }
    } else {
      if (record && !record.encrypted) {
        throw new SyncError('BadRequest', 'this blob is not encrypted: it syncs as plaintext Yjs');
      }
      // No record yet: the write creates the blob, and its writer becomes the owner.
      owner = record?.owner ?? caller.userId;
      if (caller.userId !== owner) {
        const share = (await store.listShares(address.blobId)).find((s) => s.userId === caller.userId);
        if (!share) throw new SyncError('Forbidden', 'the blob is not shared with you');
        if (share.level !== 'read_write') {
          throw new SyncError('Forbidden', 'the blob is shared with you read_only: you cannot write it');
        }
      }
    }

    const user = await store.getUser(caller.userId);
    const signPk = publicKeyBytes(user?.signPk ?? null);
    if (!signPk) {
      throw new SyncError(
        'Forbidden',
        `no signing key is registered for ${caller.userId}: register one with PUT /users/${caller.userId}/keys`,
      );
    }
    const minEpoch = record?.minEpoch ?? 0;
    // verifyEnvelopeSignature says only "not allowed"; remember why, to tell the client.
    let refusal: string | null = null;
    const isAuthor = (authorKey: Uint8Array, headerUserId: string | undefined): boolean => {
      if (headerUserId !== undefined && headerUserId !== caller.userId) {
        refusal = `the envelope names author ${headerUserId}, but ${caller.userId} sent it`;
        return false;
      }
      if (!sameBytes(authorKey, signPk)) {
        refusal = `the envelope is signed by a key that is not registered for ${caller.userId}`;
        return false;
      }
      return true;
    };
    let header: ReturnType<typeof verifyEnvelopeSignature>;
    try {
      header = verifyEnvelopeSignature(envelope, isAuthor, { docName: name, minEpoch });
    } catch (error) {
      if (refusal !== null && isSyncError(error, 'Forbidden')) throw new SyncError('Forbidden', refusal);
      // The only Conflict the signature check raises is an epoch below the floor: tell the
      // writer it is a rotation, the one refusal that sealing again under the new key cures.
      if (isSyncError(error, 'Conflict')) {
        throw new SyncError(
          'KeyRotated',
          `${error.message}: the document key was rotated; fetch the new key and seal again`,
          { cause: error },
        );
      }
      throw error;
    }

    if (address.kind === 'blob') {
      await checkBlobKey(store, chains, address.blobId, name, owner, caller.userId, header);
    }

    if (header.kind === 'snapshot' && header.epoch > minEpoch && record) {
      if (caller.userId !== owner) {
        throw new SyncError(
          'Forbidden',
          'only the owner rotates the document key (a snapshot under a newer epoch)',
        );
      }
      await raiseMinEpoch(store, mutex, record, header.epoch);
    }
  };
}

/**
 * An encrypted blob's envelope must be under a key its owner signed into the member list, and
 * only the owner compacts. The chain is verified against the owner's registered key: a list the
 * store holds but that does not verify names no key at all.
 */
async function checkBlobKey(
  store: RelayStore,
  chains: ChainCache,
  blobId: string,
  docName: string,
  owner: string,
  sender: string,
  header: { kind: string; epoch: number; keyId: string },
): Promise<void> {
  if (header.kind === 'snapshot' && sender !== owner) {
    throw new SyncError('Forbidden', 'only the owner compacts an encrypted blob (a snapshot)');
  }
  const stored = await store.listMemberLists(blobId);
  if (stored.length === 0) {
    if (sender !== owner) {
      throw new SyncError('Forbidden', 'the blob has no member list yet: only its owner writes it');
    }
    return;
  }
  const ownerKey = publicKeyBytes((await store.getUser(owner))?.signPk ?? null);
  if (!ownerKey) throw new SyncError('Forbidden', `no signing key is registered for the owner ${owner}`);
  // Verified against the owner's keys oldest first (versions signed before an identity rotation
  // stay valid), read only when the cached chain no longer fits.
  const pairs = await chains.pairs(
    docName,
    ownerKey,
    () => signKeyHistory(store, owner),
    stored.map((l) => l.list),
  );
  if (!pairs.has(`${header.epoch}:${header.keyId}`)) {
    throw new SyncError(
      'Forbidden',
      `the envelope is under key ${header.keyId} at epoch ${header.epoch}, which the owner's member list does not name`,
    );
  }
}

/**
 * Raises the document's minimum epoch before the snapshot is stored: from here on, envelopes
 * under older keys are refused, even if the snapshot's own commit then fails (the owner sends it
 * again; members fetch the new key either way).
 */
async function raiseMinEpoch(
  store: RelayStore,
  mutex: Locks,
  record: ObjectRecord,
  epoch: number,
): Promise<void> {
  await mutex.run(`min-epoch:${record.name}`, async () => {
    const current = await store.getObject(record.name);
    if (current && epoch > current.minEpoch) await store.updateObject(record.name, { minEpoch: epoch });
  });
}

/**
 * The (epoch, key id) pairs of verified member list chains, by blob: a chain is verified once
 * (an Ed25519 check per version) and again only when a version is added or the owner's current
 * key or any stored version differs from what was verified (the key history, retired keys
 * included, is read only then: a rotation changes the current key).
 */
class ChainCache {
  readonly #verified = new Map<string, { ownerKey: Uint8Array; lists: Uint8Array[]; pairs: Set<string> }>();

  async pairs(
    docName: string,
    ownerKey: Uint8Array,
    history: () => Promise<Uint8Array[]>,
    lists: Uint8Array[],
  ): Promise<Set<string>> {
    const cached = this.#verified.get(docName);
    if (
      cached &&
      sameBytes(cached.ownerKey, ownerKey) &&
      cached.lists.length === lists.length &&
      cached.lists.every((list, i) => sameBytes(list, lists[i] as Uint8Array))
    ) {
      return cached.pairs;
    }
    const pairs = new Set(
      verifyMemberListChain(lists, await history(), docName).map((l) => `${l.epoch}:${l.keyId}`),
    );
    if (this.#verified.size > 10_000) this.#verified.clear();
    this.#verified.set(docName, { ownerKey, lists, pairs });
    return pairs;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
