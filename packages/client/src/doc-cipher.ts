/**
 * End-to-end encryption of one document: Yjs updates in, envelopes out, and back. The client
 * asks its {@link DocCipherProvider} for one per USER_PRIVATE document and per blob opened
 * with `{ encrypted: true }`; what the cipher returns is all the relay and the local store
 * ever see of such a document. `@scopesync/crypto`'s `createDocCipher` fits this interface
 * (XChaCha20-Poly1305 envelopes signed by the author, DESIGN §6); tests may plug in anything
 * that round-trips. Methods may be synchronous or return promises.
 *
 * Envelopes must be self-describing: `open` receives update and snapshot envelopes alike (a
 * relay hands back a snapshot in place of the entries it replaced). A cipher binds each
 * envelope to its document and throws when an envelope fails authentication.
 */
export interface DocCipher {
  /** Encrypts (and signs) one Yjs update into an envelope. */
  seal(update: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /**
   * Encrypts one Yjs update for this device's own store only (an edit waiting in the outbox):
   * it is never sent, so it need not take a place in the author's history. Default: `seal`.
   */
  sealLocal?(update: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** Encrypts a Yjs update holding the document's whole state into a snapshot envelope. */
  sealSnapshot(stateUpdate: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** Verifies and decrypts an update or snapshot envelope, returning its Yjs update. */
  open(envelope: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /**
   * Like {@link open}, for envelopes arriving from the relay, when the cipher checks those more
   * strictly than its own local log (who may write now, epoch floors). Default: `open`.
   */
  openFromRelay?(envelope: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

/**
 * Gives the client the cipher of one encrypted document (by name, `USER_PRIVATE/…` or
 * `blob/…`). Called once per document per client; it may load or unwrap keys first.
 */
export type DocCipherProvider = (docName: string) => DocCipher | Promise<DocCipher>;
