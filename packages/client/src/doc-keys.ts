import { type Address, type KeyValueStore, parseDocName, type ShareLevel, SyncError } from '@scopesync/core';
import {
  type Identity as CryptoIdentity,
  createDocKey,
  type DocKey,
  type EnvelopeHeader,
  type EnvelopeKind,
  type MemberList,
  MemoryDocKeyring,
  openEnvelope,
  readEnvelopeHeader,
  sealEnvelope,
  sealGrant,
  unwrapDocKey,
  wrapDocKey,
} from '@scopesync/crypto';
import { KV_TABLES } from './client-store.ts';
import type { DocCipher } from './doc-cipher.ts';
import { DocHistory, type HistoryFinding, type StoredHistory } from './doc-history.ts';
import { DocKeyFetch } from './doc-key-fetch.ts';
import {
  docHistoryRecord,
  keySlot,
  docKeyRecord as recordKey,
  type StoredDocKeys,
} from './doc-key-record.ts';
import { DocMembership } from './doc-membership.ts';
import type { KeyApi, PublicKeys } from './key-api.ts';
import { checkAndFollow } from './rotation-follow.ts';
import type { Trust } from './trust.ts';

/** What {@link DocKeys} needs from the client's encryption. */
export interface DocKeysContext {
  readonly kv: KeyValueStore;
  readonly api: KeyApi;
  readonly identity: CryptoIdentity;
  readonly userId: string;
  /** Pinned keys of other users, and where tamper evidence is reported. */
  readonly trust: Trust;
}

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
  readonly #history: DocHistory;
  /** The doc's owner and (a blob's) member list: who may write it. */
  readonly #membership: DocMembership;
  /** Brings the keys the relay holds for this user. */
  readonly #fetch: DocKeyFetch;

  private constructor(
    ctx: DocKeysContext,
    address: Address,
    keyring: MemoryDocKeyring,
    stored: StoredDocKeys | undefined,
    history: StoredHistory | undefined,
  ) {
    this.#ctx = ctx;
    this.address = address;
    this.docName = address.name;
    this.keyring = keyring;
    this.#uploaded = new Set(stored?.uploaded ?? []);
    this.#history = new DocHistory(history, ctx.identity.signPublicKey);
    this.#membership = new DocMembership(ctx, address, keyring, this.#history, stored, {
      report: (finding) => this.#report(finding),
      persist: () => this.persist(),
      follow: (userId) => checkAndFollow(this, ctx.trust, userId),
    });
    this.#fetch = new DocKeyFetch(ctx, address, keyring, this.#membership, this.#uploaded, () =>
      this.persist(),
    );
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
    const history = await ctx.kv.get<StoredHistory>(KV_TABLES.keys, docHistoryRecord(address.name));
    const keys = new DocKeys(ctx, address, keyring, stored, history);
    await keys.#membership.verifyStored();
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
      if (address.kind === 'blob' && keys.owner !== undefined && keys.owner !== ctx.userId) {
        // Unavailable, not NotFound: the owner grants the key right after sharing, so asking
        // again later is the cure.
        throw new SyncError(
          'Unavailable',
          `${address.name} is shared with you but its key ${offline ? 'cannot be fetched offline' : 'was not granted yet'}`,
        );
      }
      keyring.add(createDocKey());
      if (address.kind === 'blob') keys.#membership.owner ??= ctx.userId;
      await keys.persist();
    }
    return keys;
  }

  /** The user id that owns the doc (a blob's, once known). */
  get owner(): string | undefined {
    return this.#membership.owner;
  }

  /** True when this user owns the doc: it stores the keys and rotates them. */
  get isOwner(): boolean {
    return this.#membership.isOwner;
  }

  // ---------------------------------------------------------------- DocCipher

  /** Seals a Yjs update under the current key, signed by this user, next in this device's stream. */
  seal(update: Uint8Array): Promise<Uint8Array> {
    return this.#seal(update, 'update');
  }

  /**
   * Seals a Yjs update for the local store only, outside this device's stream (counter 0): the
   * outbox keeps edits encrypted at rest, and what is sent is sealed again, next in the stream,
   * when it goes (so a stored envelope can never land behind a later one of the stream).
   */
  sealLocal(update: Uint8Array): Promise<Uint8Array> {
    return this.#seal(update, 'update', 0, false);
  }

  /** Seals a whole-state update as a snapshot envelope committing to the history it covers. */
  sealSnapshot(stateUpdate: Uint8Array): Promise<Uint8Array> {
    return this.#seal(stateUpdate, 'snapshot');
  }

  /**
   * Seals raw blob bytes (kind `raw`, bound into the AD), naming the blob version this write
   * makes when known (`ifVersion + 1`), so readers can tell an old version served as new.
   */
  sealRaw(bytes: Uint8Array, blobVersion = 0): Promise<Uint8Array> {
    return this.#seal(bytes, 'raw', blobVersion);
  }

  /**
   * Opens an envelope this device stored itself (its local log): the signature and the
   * ciphertext are checked, the author, epoch and history were checked when it arrived.
   */
  async open(envelope: Uint8Array): Promise<Uint8Array> {
    const header = readEnvelopeHeader(envelope);
    if (!this.keyring.get(header.keyId, header.epoch))
      await this.#fetch.refreshFor(header).catch(() => false);
    return openEnvelope(envelope, {
      docName: this.docName,
      keys: (id, epoch) => this.keyring.get(id, epoch),
      isAuthorAllowed: () => true,
    }).plaintext;
  }

  /**
   * Opens a Yjs log entry or snapshot received from the relay, strictly: sealed for this doc as
   * a log entry (not raw bytes), signed by a member the owner-signed member list makes a writer
   * (USER_PRIVATE: this user), under a key pair that list names and this user holds, at an
   * epoch not below the floor, and next in its author's history (a replay, fork or rollback is
   * refused; a gap is reported). A blob's snapshot must come from its owner. A snapshot under a
   * newer epoch (a rotation) raises the floor. Throws the SyncError of the first check that
   * fails; Unavailable when a key could not be fetched.
   */
  async openFromRelay(envelope: Uint8Array): Promise<Uint8Array> {
    const header = readEnvelopeHeader(envelope);
    if (header.kind === 'raw') {
      throw new SyncError('Forbidden', 'raw blob bytes are not an entry of the document log');
    }
    const opened = await this.#openChecked(envelope, header);
    const finding =
      opened.kind === 'snapshot'
        ? this.#history.observeSnapshot(opened.header, envelope)
        : this.#history.observe(opened.header, envelope);
    this.#report(finding);
    if (opened.kind === 'snapshot' && opened.epoch > this.keyring.minEpoch) {
      this.keyring.requireEpoch(opened.epoch);
      await this.persist();
    }
    await this.#persistHistory();
    return opened.plaintext;
  }

  /**
   * Opens raw blob bytes read from the relay, as strictly as a log entry, and only as raw bytes
   * (a log entry served as the blob is refused). When the author named the version and the relay
   * reports another, the relay is serving other bytes than that version's: refused.
   */
  async openRaw(envelope: Uint8Array, servedVersion: number | undefined): Promise<Uint8Array> {
    const header = readEnvelopeHeader(envelope);
    if (header.kind !== 'raw') throw new SyncError('Forbidden', 'a document log entry is not raw blob bytes');
    const opened = await this.#openChecked(envelope, header);
    if (header.blobVersion !== 0 && servedVersion !== undefined && servedVersion !== header.blobVersion) {
      this.#report({
        kind: 'rollback',
        refuse: true,
        message: `the relay serves version ${header.blobVersion} of the blob as version ${servedVersion}`,
      });
    }
    return opened.plaintext;
  }

  async #openChecked(envelope: Uint8Array, header: EnvelopeHeader) {
    if (this.address.kind === 'blob') await this.#membership.vouchFor(header);
    if (!this.keyring.get(header.keyId, header.epoch)) await this.#fetch.refreshFor(header);
    return openEnvelope(envelope, {
      docName: this.docName,
      keys: (id, epoch) => this.keyring.get(id, epoch),
      isAuthorAllowed: (key, userId) => this.#membership.isWriter(key, userId, header),
      minEpoch: this.keyring.minEpoch,
    });
  }

  /** Reports a history finding; throws Forbidden when it refuses the envelope. */
  #report(finding: HistoryFinding | undefined): void {
    if (!finding) return;
    this.#ctx.trust.reportTamper({ docName: this.docName, kind: finding.kind, message: finding.message });
    if (finding.refuse) throw new SyncError('Forbidden', `${finding.kind}: ${finding.message}`);
  }

  async #seal(
    plaintext: Uint8Array,
    kind: EnvelopeKind,
    blobVersion = 0,
    chained = true,
  ): Promise<Uint8Array> {
    const { identity, userId } = this.#ctx;
    if (!chained) {
      // Kept on this device only: unchained, and the history does not move.
      return sealEnvelope({
        docName: this.docName,
        key: this.keyring.current(),
        author: { signPublicKey: identity.signPublicKey, signSecretKey: identity.signSecretKey, userId },
        kind,
        plaintext,
        blobVersion,
      });
    }
    // Snapshots stand outside the streams (a reader past them never receives them): they commit
    // to the streams instead.
    const chain = kind === 'snapshot' ? undefined : this.#history.next();
    const envelope = sealEnvelope({
      docName: this.docName,
      key: this.keyring.current(),
      author: { signPublicKey: identity.signPublicKey, signSecretKey: identity.signSecretKey, userId },
      kind,
      plaintext,
      blobVersion,
      ...(chain ? { chain } : { commitments: this.#history.commitments() }),
    });
    if (chain) this.#history.sealed(envelope, chain);
    else this.#history.sealedSnapshot(envelope);
    // Persisted before the envelope leaves: a counter must never be used twice.
    await this.#persistHistory();
    return envelope;
  }

  // ---------------------------------------------------------------- the relay

  /**
   * Adds the keys the relay holds for this user and doc: the owner's wrapped keys of a private
   * doc, or the grants of a blob (to a sharee, or the owner's own). True when any was new.
   * Concurrent calls share one request.
   */
  refreshKeys(): Promise<boolean> {
    return this.#fetch.refreshKeys();
  }

  /**
   * Reloads a blob's member list from the relay and verifies it (see
   * {@link DocMembership.refreshMembers}); Forbidden, with a `tamper` event, when the relay serves
   * a forged, forked or rolled-back list.
   */
  refreshMembers(): Promise<void> {
    return this.#membership.refreshMembers();
  }

  /** The latest member list version, once there is one. */
  get members(): MemberList | undefined {
    return this.#membership.members;
  }

  /**
   * Publishes this member's signed head of the doc and compares the other members' heads with it
   * (see {@link DocMembership.exchangeHeads}). Encrypted blobs only; called after catching up.
   */
  exchangeHeads(): Promise<void> {
    return this.#membership.exchangeHeads();
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
      if (this.address.kind === 'blob' && this.members === undefined) {
        await this.refreshMembers();
        if (this.members === undefined) await this.#membership.appendMembers((members) => members);
      }
      for (const key of this.keyring.keys()) {
        if (this.#uploaded.has(keySlot(key))) continue;
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
        this.#uploaded.add(keySlot(key));
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

  /**
   * Adds `userId` at `level` to the signed member list, with the keys pinned for them (KeyChanged
   * when the relay now publishes others), then seals the doc keys to their pinned box key and
   * stores the grants on the relay (owner only).
   */
  async grant(userId: string, level: ShareLevel): Promise<void> {
    if (this.address.kind !== 'blob') throw new SyncError('BadRequest', 'only blobs are shared');
    if (!this.isOwner) throw new SyncError('Forbidden', 'only the owner shares an encrypted blob');
    const keys = await this.#ctx.trust.keysOf(userId);
    await this.#listMember(userId, level, keys);
    await this.#sealTo(userId, level, keys);
  }

  /**
   * @internal Follows a member's verified identity rotation to `keys` (their keys as pinned now;
   * see `rotation-follow.ts`): the doc keys are sealed to the new box key first, then the next
   * member list version names the new keys. In this order a follow that fails half-way leaves
   * the old keys listed, so the next attempt does it all again. Owner only (the caller checks).
   */
  async followMember(userId: string, level: ShareLevel, keys: PublicKeys): Promise<void> {
    await this.#sealTo(userId, level, keys);
    await this.#listMember(userId, level, keys);
  }

  /** The next member list version, naming `userId` at `level` with `keys`. */
  async #listMember(userId: string, level: ShareLevel, keys: PublicKeys): Promise<void> {
    await this.#membership.appendMembers((members) => [
      ...members.filter((m) => m.userId !== userId),
      { userId, level, signPublicKey: keys.signPublicKey, boxPublicKey: keys.boxPublicKey },
    ]);
  }

  /** Seals every key the current log may still hold envelopes under to `keys`, so `userId` reads it all. */
  async #sealTo(userId: string, level: ShareLevel, keys: PublicKeys): Promise<void> {
    if (this.address.kind !== 'blob') return;
    for (const key of this.keyring.keys()) {
      if (key.epoch < this.keyring.minEpoch) continue;
      const sealed = sealGrant({
        docKey: key,
        recipientBoxPublicKey: keys.boxPublicKey,
        grantor: this.#ctx.identity,
        blobId: this.address.blobId,
        level,
      });
      await this.#ctx.api.putGrant(this.address.blobId, userId, key.epoch, sealed);
    }
  }

  /**
   * Makes a next-epoch key current (after a member was removed: `remove`) and signs it into the
   * member list without that member; stores it for the owner's devices and, sealed to the box
   * keys the list pinned, for every remaining member — never for whoever the relay lists. The
   * caller then uploads a snapshot under it and calls {@link requireCurrentEpoch}.
   */
  async rotate(options: { readonly remove?: string | undefined } = {}): Promise<DocKey> {
    if (this.address.kind !== 'blob') throw new SyncError('BadRequest', 'only blobs rotate keys');
    if (!this.isOwner) throw new SyncError('Forbidden', 'only the owner rotates a blob key');
    if (this.members === undefined) await this.refreshMembers();
    const next = this.keyring.rotate();
    await this.persist();
    await this.#membership.appendMembers((members) => members.filter((m) => m.userId !== options.remove));
    await this.upload();
    const blobId = this.address.blobId;
    for (const member of this.members?.members ?? []) {
      await this.#ctx.api.putGrant(
        blobId,
        member.userId,
        next.epoch,
        sealGrant({
          docKey: next,
          recipientBoxPublicKey: member.boxPublicKey,
          grantor: this.#ctx.identity,
          blobId,
          level: member.level,
        }),
      );
    }
    return next;
  }

  /**
   * @internal After this user's identity rotation (the context's identity is the new one): this
   * device's envelopes continue in a new stream under the new key; the keys are stored again
   * wrapped under the new KEK; and a doc this user owns gets a new key — a private doc's stored
   * on the relay under the new KEK, a blob's next epoch signed into the member list by the new
   * key and sealed to the members. True when the caller must then replace the relay's log by a
   * snapshot under the new key (and call {@link requireCurrentEpoch}). A blob the relay does not
   * have yet (`onRelay` false, or no owner on the relay) never let its keys leave this device:
   * only re-wrapped.
   */
  async rekeyAfterIdentityRotation(onRelay = true): Promise<boolean> {
    this.#history.newOwnStream(this.#ctx.identity.signPublicKey);
    await this.#persistHistory();
    const absent =
      this.address.kind === 'blob' &&
      (!onRelay || (await this.#ctx.api.blobOwner(this.address.blobId)) === undefined);
    if (!this.isOwner || absent) {
      // A blob shared with us: its owner seals the next epoch to the keys it lists for us.
      await this.persist();
      return false;
    }
    if (this.address.kind === 'blob') {
      await this.rotate();
      return true;
    }
    this.keyring.rotate();
    await this.persist();
    await this.upload();
    return true;
  }

  /** Refuses envelopes under any epoch older than the current key's from now on. */
  async requireCurrentEpoch(): Promise<void> {
    this.keyring.requireEpoch(this.keyring.current().epoch);
    await this.persist();
  }

  /** Writes the doc's history marks (public values, small: on every envelope sealed or read). */
  async #persistHistory(): Promise<void> {
    await this.#ctx.kv.put(KV_TABLES.keys, docHistoryRecord(this.docName), this.#history.toStored());
  }

  /** Writes the keys (wrapped under the KEK) and what this device knows about them. */
  async persist(): Promise<void> {
    const { kek } = this.#ctx.identity;
    const record: StoredDocKeys = {
      v: 1,
      wrapped: this.keyring.keys().map((key) => wrapDocKey(kek, this.docName, key)),
      minEpoch: this.keyring.minEpoch,
      uploaded: [...this.#uploaded],
      ...(this.owner === undefined ? {} : { owner: this.owner }),
      lists: this.#membership.lists,
    };
    await this.#ctx.kv.put(KV_TABLES.keys, recordKey(this.docName), record);
  }
}
