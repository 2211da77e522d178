import { type DocName, parseDocName, SyncError, type UserId } from '@scopesync/core';
import { bytesEqual } from './bytes.ts';
import type { DocKeyring } from './doc-keyring.ts';
import { type OpenedEnvelope, openEnvelope, sealEnvelope } from './envelope.ts';
import type { Identity } from './identity.ts';

/**
 * The client's seam for one encrypted document: Yjs updates in, envelopes out, and back. Every
 * method is synchronous (libsodium is, once `ready()` has resolved) and throws a SyncError.
 */
export interface DocCipher {
  /** The document this cipher seals for and opens from. */
  readonly docName: DocName;
  /** Seals an incremental Yjs update under the keyring's current key, signed by this identity. */
  seal(update: Uint8Array): Uint8Array;
  /** Seals a state update (`Y.encodeStateAsUpdate`) as a snapshot envelope, for `enc snapshot` (113). */
  sealSnapshot(stateUpdate: Uint8Array): Uint8Array;
  /** Verifies and opens an envelope of either kind; returns the Yjs update inside. See `openEnvelope`. */
  open(envelope: Uint8Array): Uint8Array;
  /** Like {@link DocCipher.open}, with the kind, key id, epoch and author. */
  openEnvelope(envelope: Uint8Array): OpenedEnvelope;
}

/** Options of {@link createDocCipher}. */
export interface DocCipherOptions {
  /** The local user's identity; its signing key authors every envelope this cipher seals. */
  readonly identity: Pick<Identity, 'signPublicKey' | 'signSecretKey'>;
  readonly docName: string;
  /** The document's keys; read on every call, so rotations and added keys apply at once. */
  readonly keyring: DocKeyring;
  /** Put into sealed envelopes' headers so the relay and readers can attribute them. */
  readonly userId?: string;
  /**
   * Who may write the document. Default: only this identity's own key, which is right for
   * USER_PRIVATE (every device derives the same key). A shared blob passes its members' keys.
   */
  readonly isAuthorAllowed?: (authorKey: Uint8Array, userId: UserId | undefined) => boolean;
}

/** A {@link DocCipher} for `docName` that seals with `identity` under `keyring`'s current key. Requires `ready()` before use. */
export function createDocCipher(options: DocCipherOptions): DocCipher {
  const { identity, keyring } = options;
  const docName = parseDocName(options.docName).name;
  if (options.userId !== undefined && typeof options.userId !== 'string') {
    throw new SyncError('BadRequest', 'userId must be a string');
  }
  const author = {
    signPublicKey: identity.signPublicKey,
    signSecretKey: identity.signSecretKey,
    ...(options.userId === undefined ? {} : { userId: options.userId }),
  };
  const isAuthorAllowed =
    options.isAuthorAllowed ?? ((authorKey: Uint8Array) => bytesEqual(authorKey, identity.signPublicKey));

  const seal = (plaintext: Uint8Array, kind: 'update' | 'snapshot'): Uint8Array =>
    sealEnvelope({ docName, key: keyring.current(), author, kind, plaintext });
  const openDetailed = (envelope: Uint8Array): OpenedEnvelope =>
    openEnvelope(envelope, {
      docName,
      keys: (keyId, epoch) => keyring.get(keyId, epoch),
      isAuthorAllowed,
      minEpoch: keyring.minEpoch,
    });

  return {
    docName,
    seal: (update) => seal(update, 'update'),
    sealSnapshot: (stateUpdate) => seal(stateUpdate, 'snapshot'),
    open: (envelope) => openDetailed(envelope).plaintext,
    openEnvelope: openDetailed,
  };
}
