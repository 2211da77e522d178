/**
 * Who owns one encrypted doc and who may write it, as this device knows: a blob's member list
 * (every version signed by the owner, verified here, kept current from the relay and extended by
 * the owner), the authors it vouches for, and the signed heads members exchange to reveal what
 * the relay withheld.
 */

import type { Address, UserId } from '@scopesync/core';
import { SyncError } from '@scopesync/core';
import {
  type EnvelopeHeader,
  type Member,
  type MemberList,
  type MemoryDocKeyring,
  signHead,
  signMemberList,
  verifyHead,
  verifyMemberListChain,
} from '@scopesync/crypto';
import { sameBytes } from './base64.ts';
import type { DocHistory, HistoryFinding } from './doc-history.ts';
import type { StoredDocKeys } from './doc-key-record.ts';
import type { DocKeysContext } from './doc-keys.ts';
import { rotatedTo } from './rotation-follow.ts';

/** What a {@link DocMembership} calls back into the keys of its doc for. */
export interface MembershipHooks {
  /** Reports a history finding (a `tamper` event); throws Forbidden when it refuses. */
  readonly report: (finding: HistoryFinding | undefined) => void;
  /** Writes the doc's keys record, which holds the member list versions and the owner. */
  readonly persist: () => Promise<void>;
  /** As the owner, follows `userId`'s signed identity rotation (see `rotation-follow.ts`). */
  readonly follow: (userId: string) => Promise<unknown>;
}

/** The owner and the member list of one encrypted doc on this device, and who they let write it. */
export class DocMembership {
  /** The user id that owns the doc (a blob's, once known). */
  owner: string | undefined;
  readonly #ctx: DocKeysContext;
  readonly #address: Address;
  readonly #docName: string;
  readonly #keyring: MemoryDocKeyring;
  readonly #history: DocHistory;
  readonly #hooks: MembershipHooks;
  /** A blob's member list versions (bytes, and verified content), oldest first. */
  #lists: Uint8Array[];
  #chain: MemberList[] = [];
  /** Authors and key pairs a member list refresh did not vouch for: not asked for again in this session. */
  readonly #unvouched = new Set<string>();
  /**
   * Members' keys this client saw them rotate to (a verified chain from the key the list pins):
   * their envelopes under the new key are accepted before the owner lists it.
   */
  readonly #successors: { userId: string; from: Uint8Array; to: Uint8Array }[] = [];
  #refreshingMembers: Promise<void> | undefined;

  constructor(
    ctx: DocKeysContext,
    address: Address,
    keyring: MemoryDocKeyring,
    history: DocHistory,
    stored: Pick<StoredDocKeys, 'owner' | 'lists'> | undefined,
    hooks: MembershipHooks,
  ) {
    this.#ctx = ctx;
    this.#address = address;
    this.#docName = address.name;
    this.owner = address.kind === 'doc' ? address.namespace : stored?.owner;
    this.#lists = stored?.lists ?? [];
    this.#keyring = keyring;
    this.#history = history;
    this.#hooks = hooks;
  }

  /** Verifies the stored member list versions again, against the owner keys pinned here. */
  async verifyStored(): Promise<void> {
    if (this.#lists.length > 0 && this.owner !== undefined) {
      // Verified when stored; verified again against the owner keys pinned here (no network: this
      // works offline).
      const ownerKeys = await this.#ctx.trust.keyHistory(this.owner);
      if (ownerKeys.length > 0) this.#chain = verifyMemberListChain(this.#lists, ownerKeys, this.#docName);
    }
  }

  /** True when this user owns the doc: it stores the keys and rotates them. */
  get isOwner(): boolean {
    return this.owner === undefined || this.owner === this.#ctx.userId;
  }

  /** A blob's member list versions as signed by the owner (verified), oldest first. */
  get lists(): Uint8Array[] {
    return this.#lists;
  }

  /**
   * Whether an envelope's author may write it: USER_PRIVATE — this user's key; a blob — the
   * owner, or a read_write member of the latest member list version naming the envelope's key
   * pair, with the keys that version pinned. A blob's snapshot: the owner only.
   */
  isWriter(authorKey: Uint8Array, userId: UserId | undefined, header: EnvelopeHeader): boolean {
    const { identity } = this.#ctx;
    if (this.#address.kind === 'doc') return sameBytes(authorKey, identity.signPublicKey);
    if (this.#chain.length === 0) {
      // Our own new blob, before its first member list: only we write it.
      return this.isOwner && sameBytes(authorKey, identity.signPublicKey);
    }
    const list = this.listFor(header);
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
  listFor(header: { epoch: number; keyId: string }): MemberList | undefined {
    for (let i = this.#chain.length - 1; i >= 0; i--) {
      const list = this.#chain[i] as MemberList;
      if (list.epoch === header.epoch && list.keyId === header.keyId) return list;
    }
    return undefined;
  }

  /** Makes sure the member list is current enough to judge this envelope (one refresh per unknown author or pair). */
  async vouchFor(header: EnvelopeHeader): Promise<void> {
    if (this.isOwner && this.#chain.length === 0) return; // our own new blob: no list yet
    const list = this.listFor(header);
    const known = list !== undefined && this.isWriter(header.authorKey, header.userId, header);
    if (known) return;
    const slotKey = `${header.epoch}:${header.keyId}:${Array.from(header.authorKey).join(',')}`;
    if (this.#unvouched.has(slotKey)) return;
    await this.refreshMembers();
    if (this.listFor(header) && this.isWriter(header.authorKey, header.userId, header)) return;
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
    const member = this.listFor(header)?.members.find((m) => m.userId === userId);
    if (userId === undefined || !member || sameBytes(member.signPublicKey, header.authorKey)) return false;
    // A follow that fails is reported (`follow-failed`): the member's envelope is judged all the same.
    if (this.isOwner) await this.#hooks.follow(userId).catch(() => false);
    if (await rotatedTo(this.#ctx.trust, userId, member.signPublicKey, header.authorKey)) {
      this.#successors.push({ userId, from: member.signPublicKey, to: header.authorKey });
    }
    return this.isWriter(header.authorKey, userId, header);
  }

  /**
   * The owner's signing keys, oldest first, the current one last: ours, or the ones pinned for the
   * owner — following a signed identity rotation, KeyChanged when the relay's keys changed
   * otherwise. Earlier keys are those the owner retired: member list versions and grants they
   * signed before the rotation stay valid.
   */
  async ownerKeys(owner: string): Promise<Uint8Array[]> {
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
    if (this.#address.kind !== 'blob') return;
    const { api } = this.#ctx;
    this.owner ??= await api.blobOwner(this.#address.blobId);
    if (this.owner === undefined) return;
    const before = this.#lists;
    const served = await api.memberLists(this.#address.blobId);
    const ownerKeys = await this.ownerKeys(this.owner);
    let chain: MemberList[];
    try {
      chain = verifyMemberListChain(served, ownerKeys, this.#docName);
      if (chain[0] && chain[0].ownerId !== this.owner) {
        throw new SyncError('Forbidden', 'the member list names another owner');
      }
    } catch (error) {
      if (error instanceof SyncError && error.kind === 'Forbidden') {
        this.#hooks.report({ kind: 'forged', refuse: true, message: `member list: ${error.message}` });
      }
      throw error;
    }
    const known = this.#lists;
    // A version this device appended while the list was on its way (a share, a follow) is newer
    // than what was served: not a rollback.
    if (known !== before && served.length < known.length) return;
    if (served.length < known.length) {
      this.#hooks.report({
        kind: 'rollback',
        refuse: true,
        message: `the relay serves member list version ${served.length}, older than version ${known.length} seen before`,
      });
    }
    for (let i = 0; i < known.length; i++) {
      if (!sameBytes(known[i] as Uint8Array, served[i] as Uint8Array)) {
        this.#hooks.report({
          kind: 'fork',
          refuse: true,
          message: `member list version ${i + 1} differs from the one seen before`,
        });
      }
    }
    this.#lists = served;
    this.#chain = chain;
    await this.#hooks.persist();
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
  async appendMembers(change: (members: Member[]) => Member[]): Promise<void> {
    if (this.#address.kind !== 'blob') return;
    const { api, identity, userId } = this.#ctx;
    for (let attempt = 0; ; attempt++) {
      const base = this.#lists;
      const previous = base.at(-1);
      const key = this.#keyring.current();
      const list = signMemberList({
        docName: this.#docName,
        previous,
        owner: { userId, signPublicKey: identity.signPublicKey, signSecretKey: identity.signSecretKey },
        epoch: key.epoch,
        keyId: key.id,
        members: change([...(this.#chain.at(-1)?.members ?? [])]),
      });
      try {
        await api.putMemberList(this.#address.blobId, list);
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
        this.#docName,
      );
      await this.#hooks.persist();
      return;
    }
  }

  /**
   * Publishes this member's signed head of the doc (what it has read) and compares the other
   * members' heads with it: a member who read further than this device did reveals envelopes
   * the relay withheld (reported as `tamper`). Encrypted blobs only; called after catching up.
   */
  async exchangeHeads(): Promise<void> {
    if (this.#address.kind !== 'blob' || this.#chain.length === 0) return;
    const { api, identity, userId } = this.#ctx;
    const latest = this.#chain.at(-1) as MemberList;
    const members = new Map<string, Uint8Array>([[latest.ownerId, latest.ownerKey]]);
    for (const m of latest.members) members.set(m.userId, m.signPublicKey);
    for (const { userId: who, head } of await api.heads(this.#address.blobId)) {
      if (who === userId) continue;
      let signed: ReturnType<typeof verifyHead>;
      try {
        signed = verifyHead(head, this.#docName, (key, id) => {
          const pinned = members.get(id);
          return id === who && pinned !== undefined && sameBytes(pinned, key);
        });
      } catch {
        // A member's head under another key than the list pins: as the owner, follow their
        // signed identity rotation (if it is one) for the next exchange.
        if (this.isOwner && members.has(who) && who !== latest.ownerId) {
          await this.#hooks.follow(who).catch(() => false);
        }
        continue; // a former member's or a forged head says nothing about our view
      }
      if (signed.memberListVersion > this.#chain.length) {
        this.#hooks.report({
          kind: 'withheld',
          refuse: false,
          message: `${who} has seen member list version ${signed.memberListVersion}, the relay served this device ${this.#chain.length}`,
        });
      }
      this.#hooks.report(this.#history.compare(signed));
    }
    await api.putHead(
      this.#address.blobId,
      signHead(
        this.#docName,
        { userId, signPublicKey: identity.signPublicKey, signSecretKey: identity.signSecretKey },
        {
          memberListVersion: this.#chain.length,
          snapshot: this.#history.snapshot,
          clock: this.#history.readClock(),
        },
      ),
    );
  }
}
