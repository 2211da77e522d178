import {
  type Address,
  type KeyValueStore,
  parseDocName,
  type ShareLevel,
  SyncError,
  type UserId,
} from '@scopesync/core';
import {
  type Identity as CryptoIdentity,
  createDocKey,
  type DocKey,
  MemoryDocKeyring,
  openEnvelope,
  openGrant,
  readEnvelopeHeader,
  sealEnvelope,
  sealGrant,
  unwrapDocKey,
  wrapDocKey,
} from '@scopesync/crypto';
import { sameBytes } from './base64.ts';
import { KV_TABLES } from './client-store.ts';
import type { DocCipher } from './doc-cipher.ts';
import { docKeyRecord as recordKey } from './doc-key-record.ts';
import type { KeyApi } from './key-api.ts';

/** What {@link DocKeys} needs from the client's encryption. */
export interface DocKeysContext {
  readonly kv: KeyValueStore;
  readonly api: KeyApi;
  readonly identity: CryptoIdentity;
  readonly userId: string;
}

/** A document's keys as stored on this device (table `keys`, record `doc:<name>`). */
interface StoredDocKeys {
  readonly v: 1;
  /** Every key held, each `wrapDocKey(kek, docName, key)`: never a key in the clear. */
  readonly wrapped: Uint8Array[];
  /** Envelopes under an older epoch are refused (raised by a snapshot under a newer key). */
  readonly minEpoch: number;
  /** `epoch:id` of the keys this device has stored on the relay (as the owner). */
  readonly uploaded: string[];
  /** A blob's owner, once known. */
  readonly owner?: string | undefined;
}

interface Writer {
  readonly userId: string;
  readonly signPublicKey: Uint8Array;
}

const slot = (key: { epoch: number; id: string }): string => `${key.epoch}:${key.id}`;

/**
 * The keys of one end-to-end encrypted document on this device, and its cipher.
 *
 * - A USER_PRIVATE doc has random document keys (usually one; two devices that both created the
 *   doc offline each made one). The owner's devices share them wrapped under the KEK, which
 *   every device of the user derives from the root seed.
 * - An encrypted blob has one key per epoch. The owner creates it, seals it to each sharee
 *   (and to its own box key, for its other devices) as signed grants stored on the relay, and
 *   rotates it to a new epoch when a member is removed.
 *
 * Everything at rest is wrapped under the KEK. Envelopes from the relay are checked strictly
 * (author allowed, epoch floor); envelopes from the local log were checked when they arrived,
 * so re-reading them only verifies their signature and opens them.
 */
export class DocKeys implements DocCipher {
  readonly docName: string;
  readonly address: Address;
  readonly keyring: MemoryDocKeyring;
  readonly #ctx: DocKeysContext;
  readonly #uploaded: Set<string>;
  #owner: string | undefined;
  #writers: Writer[] | undefined;
  /** Key slots a relay refresh did not find: not asked for again in this session. */
  readonly #missing = new Set<string>();
  #refreshing: Promise<boolean> | undefined;

  private constructor(
    ctx: DocKeysContext,
    address: Address,
    keyring: MemoryDocKeyring,
    stored: StoredDocKeys | undefined,
  ) {
    this.#ctx = ctx;
    this.address = address;
    this.docName = address.name;
    this.keyring = keyring;
    this.#uploaded = new Set(stored?.uploaded ?? []);
    this.#owner = address.kind === 'doc' ? address.namespace : stored?.owner;
  }

  /**
   * The keys of `docName` on this device: those stored locally; else those the relay holds for
   * this user (the owner's other devices, or grants to a sharee); else, for a doc this user
   * owns or is creating, a fresh key. Unavailable for a blob shared with this user whose key
   * was not granted yet or cannot be fetched (offline).
   */
  static async load(ctx: DocKeysContext, docName: string): Promise<DocKeys> {
    const address = parseDocName(docName);
    const stored = await ctx.kv.get<StoredDocKeys>(KV_TABLES.keys, recordKey(address.name));
    const keyring = new MemoryDocKeyring([], { minEpoch: stored?.minEpoch ?? 0 });
    for (const wrapped of stored?.wrapped ?? [])
      keyring.add(unwrapDocKey(ctx.identity.kek, address.name, wrapped));
    const keys = new DocKeys(ctx, address, keyring, stored);
    if (keyring.keys().length > 0) return keys;

    let offline = false;
    try {
      await keys.refreshKeys();
    } catch (error) {
      if (!(error instanceof SyncError) || error.kind !== 'Unavailable') throw error;
      // Offline: a doc created now gets its own key; the relay learns it on reconnect.
      offline = true;
    }
    if (keyring.keys().length === 0) {
      if (address.kind === 'blob' && keys.#owner !== undefined && keys.#owner !== ctx.userId) {
        // Unavailable, not NotFound: the owner grants the key right after sharing, so asking
        // again later is the cure.
        throw new SyncError(
          'Unavailable',
          `${address.name} is shared with you but its key ${offline ? 'cannot be fetched offline' : 'was not granted yet'}`,
        );
      }
      keyring.add(createDocKey());
      if (address.kind === 'blob') keys.#owner ??= ctx.userId;
      await keys.persist();
    }
    return keys;
  }

  /** The user id that owns the doc (a blob's, once known). */
  get owner(): string | undefined {
    return this.#owner;
  }

  /** True when this user owns the doc: it stores the keys and rotates them. */
  get isOwner(): boolean {
    return this.#owner === undefined || this.#owner === this.#ctx.userId;
  }

  // ---------------------------------------------------------------- DocCipher

  /** Seals a Yjs update under the current key, signed by this user. */
  seal(update: Uint8Array): Uint8Array {
    return this.#seal(update, 'update');
  }

  /** Seals a whole-state update as a snapshot envelope. */
  sealSnapshot(stateUpdate: Uint8Array): Uint8Array {
    return this.#seal(stateUpdate, 'snapshot');
  }

  /**
   * Opens an envelope this device stored itself (its local log): the signature and the
   * ciphertext are checked, the author and epoch were checked when it arrived.
   */
  async open(envelope: Uint8Array): Promise<Uint8Array> {
    const header = readEnvelopeHeader(envelope);
    if (!this.keyring.get(header.keyId, header.epoch)) await this.#refreshFor(header).catch(() => false);
    return openEnvelope(envelope, {
      docName: this.docName,
      keys: (id, epoch) => this.keyring.get(id, epoch),
      isAuthorAllowed: () => true,
    }).plaintext;
  }

  /**
   * Opens an envelope received from the relay, strictly: sealed for this doc, signed by a
   * member allowed to write it (USER_PRIVATE: this user; a blob: its owner or a read_write
   * sharee), under a key this user holds (fetched from the relay when new) at an epoch not
   * below the floor. A snapshot under a newer epoch (a rotation) raises the floor. Throws the
   * SyncError of the first check that fails; Unavailable when a key could not be fetched.
   */
  async openFromRelay(envelope: Uint8Array): Promise<Uint8Array> {
    const header = readEnvelopeHeader(envelope);
    if (!this.keyring.get(header.keyId, header.epoch)) await this.#refreshFor(header);
    if (this.address.kind === 'blob' && !this.#isWriter(header.authorKey, header.userId)) {
      await this.refreshWriters();
    }
    const opened = openEnvelope(envelope, {
      docName: this.docName,
      keys: (id, epoch) => this.keyring.get(id, epoch),
      isAuthorAllowed: (key, userId) => this.#isWriter(key, userId),
      minEpoch: this.keyring.minEpoch,
    });
    if (opened.kind === 'snapshot' && opened.epoch > this.keyring.minEpoch) {
      this.keyring.requireEpoch(opened.epoch);
      await this.persist();
    }
    return opened.plaintext;
  }

  #seal(plaintext: Uint8Array, kind: 'update' | 'snapshot'): Uint8Array {
    const { identity, userId } = this.#ctx;
    return sealEnvelope({
      docName: this.docName,
      key: this.keyring.current(),
      author: { signPublicKey: identity.signPublicKey, signSecretKey: identity.signSecretKey, userId },
      kind,
      plaintext,
    });
  }

  #isWriter(authorKey: Uint8Array, userId: UserId | undefined): boolean {
    const { identity, userId: me } = this.#ctx;
    if (this.address.kind === 'doc') return sameBytes(authorKey, identity.signPublicKey);
    if (sameBytes(authorKey, identity.signPublicKey) && (userId === undefined || userId === me)) {
      // Our own envelopes (another device of ours) — allowed while we may write at all.
      return this.isOwner || (this.#writers ?? []).some((w) => w.userId === me);
    }
    return (this.#writers ?? []).some(
      (w) => (userId === undefined || w.userId === userId) && sameBytes(w.signPublicKey, authorKey),
    );
  }

  // ---------------------------------------------------------------- the relay

  async #refreshFor(header: { keyId: string; epoch: number }): Promise<void> {
    const wanted = slot({ id: header.keyId, epoch: header.epoch });
    // A key a refresh did not bring is not asked for again: a forged or damaged envelope must
    // not turn every read into a request.
    if (this.#missing.has(wanted)) return;
    await this.refreshKeys();
    if (!this.keyring.get(header.keyId, header.epoch)) this.#missing.add(wanted);
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
    if (this.address.kind === 'doc') {
      for (const wrapped of await api.docKeys(this.docName)) {
        // Wrapped under our KEK by one of our devices; one that does not open is skipped.
        try {
          found.push(unwrapDocKey(identity.kek, this.docName, wrapped));
        } catch {}
      }
    } else {
      const blobId = this.address.blobId;
      this.#owner ??= await api.blobOwner(blobId);
      if (this.#owner === undefined) return false; // a blob nobody has written yet
      const ownerKey = await this.#signKeyOf(this.#owner);
      for (const { grant, sealedKey } of await api.myGrants(blobId)) {
        try {
          found.push(
            openGrant({
              grant,
              sealedKey,
              recipient: identity,
              blobId,
              isGrantorAllowed: (key) => ownerKey !== undefined && sameBytes(key, ownerKey),
            }).docKey,
          );
        } catch {}
      }
    }
    let added = false;
    for (const key of found) {
      if (this.keyring.get(key.id, key.epoch)) continue;
      this.keyring.add(key);
      // The relay already has it: no need to store it there again.
      this.#uploaded.add(slot(key));
      added = true;
    }
    if (added || this.address.kind === 'blob') await this.persist();
    return added;
  }

  /** Reloads who may write a blob: its owner and read_write sharees, with their signing keys. */
  async refreshWriters(): Promise<void> {
    if (this.address.kind !== 'blob') return;
    const { api } = this.#ctx;
    const blobId = this.address.blobId;
    this.#owner ??= await api.blobOwner(blobId);
    const ids = new Set<string>();
    if (this.#owner !== undefined) ids.add(this.#owner);
    for (const share of await api.shares(blobId)) if (share.level === 'read_write') ids.add(share.userId);
    const writers: Writer[] = [];
    for (const userId of ids) {
      const signPublicKey = await this.#signKeyOf(userId);
      if (signPublicKey) writers.push({ userId, signPublicKey });
    }
    this.#writers = writers;
  }

  async #signKeyOf(userId: string): Promise<Uint8Array | undefined> {
    if (userId === this.#ctx.userId) return this.#ctx.identity.signPublicKey;
    const cached = this.#writers?.find((w) => w.userId === userId);
    if (cached) return cached.signPublicKey;
    return (await this.#ctx.api.userKeys(userId))?.signPublicKey;
  }

  /**
   * Stores on the relay every key this owner has not stored there yet, so the user's other
   * devices can read the doc: a private doc's keys wrapped under the KEK, a blob's as grants
   * sealed to the owner's own box key. False when a blob does not exist on the relay yet (its
   * first append creates it; call again after that).
   */
  async upload(): Promise<boolean> {
    if (!this.isOwner) return true;
    const { api, identity, userId } = this.#ctx;
    let changed = false;
    try {
      for (const key of this.keyring.keys()) {
        if (this.#uploaded.has(slot(key))) continue;
        if (this.address.kind === 'doc') {
          await api.putDocKey(this.docName, key.id, wrapDocKey(identity.kek, this.docName, key));
        } else {
          const sealed = sealGrant({
            docKey: key,
            recipientBoxPublicKey: identity.boxPublicKey,
            grantor: identity,
            blobId: this.address.blobId,
            level: 'read_write',
          });
          await api.putGrant(this.address.blobId, userId, key.epoch, sealed);
        }
        this.#uploaded.add(slot(key));
        changed = true;
      }
    } catch (error) {
      if (this.address.kind === 'blob' && error instanceof SyncError && error.kind === 'NotFound')
        return false;
      throw error;
    } finally {
      if (changed) await this.persist();
    }
    return true;
  }

  /** Seals the current key to `userId` at `level` and stores the grant on the relay (owner only). */
  async grant(userId: string, level: ShareLevel): Promise<void> {
    if (this.address.kind !== 'blob') throw new SyncError('BadRequest', 'only blobs are shared');
    const recipient = await this.#ctx.api.userKeys(userId);
    if (!recipient) {
      throw new SyncError(
        'Conflict',
        `${userId} has no encryption keys registered yet: they must open scopesync with encryption once`,
      );
    }
    // Every key the current log may still hold envelopes under, so the sharee reads it all.
    for (const key of this.keyring.keys()) {
      if (key.epoch < this.keyring.minEpoch) continue;
      const sealed = sealGrant({
        docKey: key,
        recipientBoxPublicKey: recipient.boxPublicKey,
        grantor: this.#ctx.identity,
        blobId: this.address.blobId,
        level,
      });
      await this.#ctx.api.putGrant(this.address.blobId, userId, key.epoch, sealed);
    }
    this.#writers = undefined;
  }

  /**
   * Makes a next-epoch key current (after a member was removed) and stores it for the owner's
   * devices and, sealed, for every remaining sharee. The caller then uploads a snapshot under
   * it and calls {@link requireCurrentEpoch}.
   */
  async rotate(): Promise<DocKey> {
    if (this.address.kind !== 'blob') throw new SyncError('BadRequest', 'only blobs rotate keys');
    if (!this.isOwner) throw new SyncError('Forbidden', 'only the owner rotates a blob key');
    const next = this.keyring.rotate();
    await this.persist();
    await this.upload();
    const blobId = this.address.blobId;
    for (const share of await this.#ctx.api.shares(blobId)) {
      const recipient = await this.#ctx.api.userKeys(share.userId);
      if (!recipient) continue;
      await this.#ctx.api.putGrant(
        blobId,
        share.userId,
        next.epoch,
        sealGrant({
          docKey: next,
          recipientBoxPublicKey: recipient.boxPublicKey,
          grantor: this.#ctx.identity,
          blobId,
          level: share.level,
        }),
      );
    }
    this.#writers = undefined;
    return next;
  }

  /** Refuses envelopes under any epoch older than the current key's from now on. */
  async requireCurrentEpoch(): Promise<void> {
    this.keyring.requireEpoch(this.keyring.current().epoch);
    await this.persist();
  }

  /** Writes the keys (wrapped under the KEK) and what this device knows about them. */
  async persist(): Promise<void> {
    const { kek } = this.#ctx.identity;
    const record: StoredDocKeys = {
      v: 1,
      wrapped: this.keyring.keys().map((key) => wrapDocKey(kek, this.docName, key)),
      minEpoch: this.keyring.minEpoch,
      uploaded: [...this.#uploaded],
      ...(this.#owner === undefined ? {} : { owner: this.#owner }),
    };
    await this.#ctx.kv.put(KV_TABLES.keys, recordKey(this.docName), record);
  }
}
