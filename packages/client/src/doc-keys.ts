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
  type EnvelopeHeader,
  type EnvelopeKind,
  type Member,
  type MemberList,
  MemoryDocKeyring,
  openEnvelope,
  openGrant,
  readEnvelopeHeader,
  sealEnvelope,
  sealGrant,
  signHead,
  signMemberList,
  unwrapDocKey,
  verifyHead,
  verifyMemberListChain,
  wrapDocKey,
} from '@scopesync/crypto';
import { sameBytes } from './base64.ts';
import { KV_TABLES } from './client-store.ts';
import type { DocCipher } from './doc-cipher.ts';
import { DocHistory, type HistoryFinding, type StoredHistory } from './doc-history.ts';
import { docKeyRecord as recordKey } from './doc-key-record.ts';
import type { KeyApi, PublicKeys } from './key-api.ts';
import { checkAndFollow, rotatedTo } from './rotation-follow.ts';
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
  /** A blob's member list, every version as signed by the owner (verified), oldest first. */
  readonly lists?: Uint8Array[] | undefined;
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
  /** A blob's member list versions (bytes, and verified content), oldest first. */
  #lists: Uint8Array[];
  #chain: MemberList[] = [];
  readonly #history: DocHistory;
  /** Key slots a relay refresh did not find: not asked for again in this session. */
  readonly #missing = new Set<string>();
  /** Authors and key pairs a member list refresh did not vouch for: not asked for again in this session. */
  readonly #unvouched = new Set<string>();
  /**
   * Members' keys this client saw them rotate to (a verified chain from the key the list pins):
   * their envelopes under the new key are accepted before the owner lists it.
   */
  readonly #successors: { userId: string; from: Uint8Array; to: Uint8Array }[] = [];
  #refreshing: Promise<boolean> | undefined;
  #refreshingMembers: Promise<void> | undefined;

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
    this.#owner = address.kind === 'doc' ? address.namespace : stored?.owner;
    this.#lists = stored?.lists ?? [];
    this.#history = new DocHistory(history, ctx.identity.signPublicKey);
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
    const history = await ctx.kv.get<StoredHistory>(KV_TABLES.keys, historyKey(address.name));
    const keys = new DocKeys(ctx, address, keyring, stored, history);
    if (keys.#lists.length > 0 && keys.#owner !== undefined) {
      // Verified when stored; verified again against the owner keys pinned here (no network: this
      // works offline).
      const ownerKeys = await ctx.trust.keyHistory(keys.#owner);
      if (ownerKeys.length > 0) keys.#chain = verifyMemberListChain(keys.#lists, ownerKeys, address.name);
    }
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
    if (!this.keyring.get(header.keyId, header.epoch)) await this.#refreshFor(header).catch(() => false);
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
    if (this.address.kind === 'blob') await this.#vouchFor(header);
    if (!this.keyring.get(header.keyId, header.epoch)) await this.#refreshFor(header);
    return openEnvelope(envelope, {
      docName: this.docName,
      keys: (id, epoch) => this.keyring.get(id, epoch),
      isAuthorAllowed: (key, userId) => this.#isWriter(key, userId, header),
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

  /**
   * Whether an envelope's author may write it: USER_PRIVATE — this user's key; a blob — the
   * owner, or a read_write member of the latest member list version naming the envelope's key
   * pair, with the keys that version pinned. A blob's snapshot: the owner only.
   */
  #isWriter(authorKey: Uint8Array, userId: UserId | undefined, header: EnvelopeHeader): boolean {
    const { identity } = this.#ctx;
    if (this.address.kind === 'doc') return sameBytes(authorKey, identity.signPublicKey);
    if (this.#chain.length === 0) {
      // Our own new blob, before its first member list: only we write it.
      return this.isOwner && sameBytes(authorKey, identity.signPublicKey);
    }
    const list = this.#listFor(header);
    if (!list) return false;
    if (sameBytes(authorKey, list.ownerKey)) return userId === undefined || userId === list.ownerId;
    if (header.kind === 'snapshot') return false;
    return list.members.some(
      (m) =>
        m.level === 'read_write' &&
        (userId === undefined || m.userId === userId) &&
        (sameBytes(m.signPublicKey, authorKey) ||
          this.#successors.some(
            (s) => s.userId === m.userId && sameBytes(s.from, m.signPublicKey) && sameBytes(s.to, authorKey),
          )),
    );
  }

  /** The latest member list version naming the envelope's key pair. */
  #listFor(header: { epoch: number; keyId: string }): MemberList | undefined {
    for (let i = this.#chain.length - 1; i >= 0; i--) {
      const list = this.#chain[i] as MemberList;
      if (list.epoch === header.epoch && list.keyId === header.keyId) return list;
    }
    return undefined;
  }

  /** Makes sure the member list is current enough to judge this envelope (one refresh per unknown author or pair). */
  async #vouchFor(header: EnvelopeHeader): Promise<void> {
    if (this.isOwner && this.#chain.length === 0) return; // our own new blob: no list yet
    const list = this.#listFor(header);
    const known = list !== undefined && this.#isWriter(header.authorKey, header.userId, header);
    if (known) return;
    const slotKey = `${header.epoch}:${header.keyId}:${Array.from(header.authorKey).join(',')}`;
    if (this.#unvouched.has(slotKey)) return;
    await this.refreshMembers();
    if (this.#listFor(header) && this.#isWriter(header.authorKey, header.userId, header)) return;
    if (await this.#rotatedMember(header).catch(() => false)) return;
    this.#unvouched.add(slotKey);
  }

  /**
   * A listed member's envelope under another key than the list pins: true when a verified
   * identity rotation (signed by the listed key, countersigned by the next, ending at the author
   * key as pinned now) explains it. The owner then follows it (the next list version names the
   * new key, the keys are sealed to it); any member accepts the new key meanwhile, so nothing the
   * member writes before the owner follows is refused. An unexplained change explains nothing.
   */
  async #rotatedMember(header: EnvelopeHeader): Promise<boolean> {
    const userId = header.userId;
    const member = this.#listFor(header)?.members.find((m) => m.userId === userId);
    if (userId === undefined || !member || sameBytes(member.signPublicKey, header.authorKey)) return false;
    // A follow that fails is reported (`follow-failed`): the member's envelope is judged all the same.
    if (this.isOwner) await checkAndFollow(this, this.#ctx.trust, userId).catch(() => false);
    if (await rotatedTo(this.#ctx.trust, userId, member.signPublicKey, header.authorKey)) {
      this.#successors.push({ userId, from: member.signPublicKey, to: header.authorKey });
    }
    return this.#isWriter(header.authorKey, userId, header);
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
      await this.refreshMembers();
      // The owner keys pinned on first use (and the rotations they signed), never the one the
      // relay hands out today.
      const ownerKeys = await this.#ownerKeys(this.#owner);
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
          if (!this.isOwner && !this.#listFor({ epoch: opened.docKey.epoch, keyId: opened.docKey.id }))
            continue;
          found.push(opened.docKey);
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

  /**
   * The owner's signing keys, oldest first, the current one last: ours, or the ones pinned for the
   * owner — following a signed identity rotation, KeyChanged when the relay's keys changed
   * otherwise. Earlier keys are those the owner retired: member list versions and grants they
   * signed before the rotation stay valid.
   */
  async #ownerKeys(owner: string): Promise<Uint8Array[]> {
    const { trust, userId } = this.#ctx;
    if (owner === userId) {
      // A device that starts after our own rotation learns the keys we retired.
      await trust.loadOwnHistory().catch(() => undefined);
    } else {
      await trust.keysOf(owner);
    }
    return trust.keyHistory(owner);
  }

  /**
   * Reloads a blob's member list from the relay and verifies it: every version signed by the
   * owner key pinned on first use, each chaining the one before, epochs only in +1 steps, and
   * extending (never rewriting or shortening) the chain this device has seen. Forbidden, with
   * a `tamper` event, when the relay serves a forged, forked or rolled-back list.
   */
  refreshMembers(): Promise<void> {
    this.#refreshingMembers ??= this.#refreshMembers().finally(() => {
      this.#refreshingMembers = undefined;
    });
    return this.#refreshingMembers;
  }

  async #refreshMembers(): Promise<void> {
    if (this.address.kind !== 'blob') return;
    const { api } = this.#ctx;
    this.#owner ??= await api.blobOwner(this.address.blobId);
    if (this.#owner === undefined) return;
    const before = this.#lists;
    const served = await api.memberLists(this.address.blobId);
    const ownerKeys = await this.#ownerKeys(this.#owner);
    let chain: MemberList[];
    try {
      chain = verifyMemberListChain(served, ownerKeys, this.docName);
      if (chain[0] && chain[0].ownerId !== this.#owner) {
        throw new SyncError('Forbidden', 'the member list names another owner');
      }
    } catch (error) {
      if (error instanceof SyncError && error.kind === 'Forbidden') {
        this.#report({ kind: 'forged', refuse: true, message: `member list: ${error.message}` });
      }
      throw error;
    }
    const known = this.#lists;
    // A version this device appended while the list was on its way (a share, a follow) is newer
    // than what was served: not a rollback.
    if (known !== before && served.length < known.length) return;
    if (served.length < known.length) {
      this.#report({
        kind: 'rollback',
        refuse: true,
        message: `the relay serves member list version ${served.length}, older than version ${known.length} seen before`,
      });
    }
    for (let i = 0; i < known.length; i++) {
      if (!sameBytes(known[i] as Uint8Array, served[i] as Uint8Array)) {
        this.#report({
          kind: 'fork',
          refuse: true,
          message: `member list version ${i + 1} differs from the one seen before`,
        });
      }
    }
    this.#lists = served;
    this.#chain = chain;
    await this.persist();
  }

  /** The latest member list version, once there is one. */
  get members(): MemberList | undefined {
    return this.#chain.at(-1);
  }

  /**
   * Appends the next member list version (owner only) with the current key and the members
   * `change` makes of the latest ones. A concurrent version from another of our devices is
   * read and the change made again on top of it.
   */
  async #appendMembers(change: (members: Member[]) => Member[]): Promise<void> {
    if (this.address.kind !== 'blob') return;
    const { api, identity, userId } = this.#ctx;
    for (let attempt = 0; ; attempt++) {
      const base = this.#lists;
      const previous = base.at(-1);
      const key = this.keyring.current();
      const list = signMemberList({
        docName: this.docName,
        previous,
        owner: { userId, signPublicKey: identity.signPublicKey, signSecretKey: identity.signSecretKey },
        epoch: key.epoch,
        keyId: key.id,
        members: change([...(this.#chain.at(-1)?.members ?? [])]),
      });
      try {
        await api.putMemberList(this.address.blobId, list);
      } catch (error) {
        if (
          attempt === 0 &&
          error instanceof SyncError &&
          (error.kind === 'Conflict' || error.kind === 'Forbidden')
        ) {
          await this.refreshMembers();
          continue;
        }
        throw error;
      }
      // On the versions it was signed after (a refresh meanwhile may already hold it).
      this.#lists = [...base, list];
      this.#chain = verifyMemberListChain(
        this.#lists,
        await this.#ctx.trust.keyHistory(userId),
        this.docName,
      );
      await this.persist();
      return;
    }
  }

  /**
   * Publishes this member's signed head of the doc (what it has read) and compares the other
   * members' heads with it: a member who read further than this device did reveals envelopes
   * the relay withheld (reported as `tamper`). Encrypted blobs only; called after catching up.
   */
  async exchangeHeads(): Promise<void> {
    if (this.address.kind !== 'blob' || this.#chain.length === 0) return;
    const { api, identity, userId } = this.#ctx;
    const latest = this.#chain.at(-1) as MemberList;
    const members = new Map<string, Uint8Array>([[latest.ownerId, latest.ownerKey]]);
    for (const m of latest.members) members.set(m.userId, m.signPublicKey);
    for (const { userId: who, head } of await api.heads(this.address.blobId)) {
      if (who === userId) continue;
      let signed: ReturnType<typeof verifyHead>;
      try {
        signed = verifyHead(head, this.docName, (key, id) => {
          const pinned = members.get(id);
          return id === who && pinned !== undefined && sameBytes(pinned, key);
        });
      } catch {
        // A member's head under another key than the list pins: as the owner, follow their
        // signed identity rotation (if it is one) for the next exchange.
        if (this.isOwner && members.has(who) && who !== latest.ownerId) {
          await checkAndFollow(this, this.#ctx.trust, who).catch(() => false);
        }
        continue; // a former member's or a forged head says nothing about our view
      }
      if (signed.memberListVersion > this.#chain.length) {
        this.#report({
          kind: 'withheld',
          refuse: false,
          message: `${who} has seen member list version ${signed.memberListVersion}, the relay served this device ${this.#chain.length}`,
        });
      }
      this.#report(this.#history.compare(signed));
    }
    await api.putHead(
      this.address.blobId,
      signHead(
        this.docName,
        { userId, signPublicKey: identity.signPublicKey, signSecretKey: identity.signSecretKey },
        {
          memberListVersion: this.#chain.length,
          snapshot: this.#history.snapshot,
          clock: this.#history.readClock(),
        },
      ),
    );
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
      if (this.address.kind === 'blob' && this.#chain.length === 0) {
        await this.refreshMembers();
        if (this.#chain.length === 0) await this.#appendMembers((members) => members);
      }
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
    await this.#appendMembers((members) => [
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
    if (this.#chain.length === 0) await this.refreshMembers();
    const next = this.keyring.rotate();
    await this.persist();
    await this.#appendMembers((members) => members.filter((m) => m.userId !== options.remove));
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
    await this.#ctx.kv.put(KV_TABLES.keys, historyKey(this.docName), this.#history.toStored());
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
      lists: this.#lists,
    };
    await this.#ctx.kv.put(KV_TABLES.keys, recordKey(this.docName), record);
  }
}

function historyKey(docName: string): string {
  return `history:${docName}`;
}
