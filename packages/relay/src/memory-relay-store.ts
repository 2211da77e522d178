import { AsyncLocalStorage } from 'node:async_hooks';
import {
  type AuditHead,
  type AuditQuery,
  type AuditRecord,
  type BlobWrite,
  type DeviceListRecord,
  forwardRelayStoreTx,
  type KeyGrantRecord,
  type KeyHolder,
  type KeyRecord,
  type Level,
  type MemberListRecord,
  type ModGrant,
  type ObjectListing,
  type ObjectPatch,
  type ObjectRecord,
  type RelayStore,
  type RelayStoreTx,
  type RetiredKeyRecord,
  type ShareRecord,
  type SignedHeadRecord,
  SyncError,
  TransactionGate,
  type UserKeys,
  type UserRecord,
  type WrappedKeyRecord,
} from '@scopesync/core';

/** Most entries one audit query returns. */
const MAX_AUDIT_PAGE = 10_000;

/** The `prevHash` of the first audit entry. */
const GENESIS_HASH = '0'.repeat(64);

/**
 * A {@link RelayStore} in memory: the reference implementation, for unit tests and
 * ephemeral relays. Everything is lost on close. A transaction runs alone behind a
 * {@link TransactionGate} and rolls back by restoring a snapshot taken when it began (a copy
 * of every index, not of the records, which are never changed in place).
 */
export class MemoryRelayStore implements RelayStore {
  readonly #data = new MemoryRelayData();
  readonly #gate = new TransactionGate(new AsyncLocalStorage());
  #closed = false;

  async createUser(user: UserRecord, firstKey: KeyRecord): Promise<void> {
    return this.#call(() => this.#data.createUser(user, firstKey));
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    return this.#call(() => this.#data.getUser(userId));
  }

  async findUserBySignPk(signPk: string): Promise<UserRecord | null> {
    return this.#call(() => this.#data.findUserBySignPk(signPk));
  }

  async setUserKeys(userId: string, keys: UserKeys): Promise<boolean> {
    return this.#call(() => this.#data.setUserKeys(userId, keys));
  }

  async retireSignKey(record: RetiredKeyRecord): Promise<boolean> {
    return this.#call(() => this.#data.retireSignKey(record));
  }

  async appendDeviceList(record: DeviceListRecord): Promise<boolean> {
    return this.#call(() => this.#data.appendDeviceList(record));
  }

  async listDeviceLists(userId: string): Promise<DeviceListRecord[]> {
    return this.#call(() => this.#data.listDeviceLists(userId));
  }

  async getRetiredKey(signPk: string): Promise<RetiredKeyRecord | null> {
    return this.#call(() => this.#data.getRetiredKey(signPk));
  }

  async listRetiredKeys(userId: string): Promise<RetiredKeyRecord[]> {
    return this.#call(() => this.#data.listRetiredKeys(userId));
  }

  async setUserLevel(userId: string, level: Level): Promise<boolean> {
    return this.#call(() => this.#data.setUserLevel(userId, level));
  }

  async countUsers(): Promise<number> {
    return this.#call(() => this.#data.countUsers());
  }

  async addKey(key: KeyRecord): Promise<void> {
    return this.#call(() => this.#data.addKey(key));
  }

  async getKey(keyHash: string): Promise<KeyRecord | null> {
    return this.#call(() => this.#data.getKey(keyHash));
  }

  async getKeyHolder(keyHash: string): Promise<KeyHolder | null> {
    return this.#call(() => this.#data.getKeyHolder(keyHash));
  }

  async revokeKey(keyHash: string, at: number): Promise<boolean> {
    return this.#call(() => this.#data.revokeKey(keyHash, at));
  }

  async bindKeyToDevice(keyHash: string, deviceId: string): Promise<boolean> {
    return this.#call(() => this.#data.bindKeyToDevice(keyHash, deviceId));
  }

  async listKeys(userId: string): Promise<KeyRecord[]> {
    return this.#call(() => this.#data.listKeys(userId));
  }

  async getObject(name: string): Promise<ObjectRecord | null> {
    return this.#call(() => this.#data.getObject(name));
  }

  async createObject(record: ObjectRecord): Promise<ObjectRecord> {
    return this.#call(() => this.#data.createObject(record));
  }

  async updateObject(name: string, patch: ObjectPatch): Promise<ObjectRecord | null> {
    return this.#call(() => this.#data.updateObject(name, patch));
  }

  async deleteObject(name: string): Promise<boolean> {
    return this.#call(() => this.#data.deleteObject(name));
  }

  async listObjects(listing: ObjectListing): Promise<ObjectRecord[]> {
    return this.#call(() => this.#data.listObjects(listing));
  }

  async listObjectsOfOwner(owner: string, listing: ObjectListing): Promise<ObjectRecord[]> {
    return this.#call(() => this.#data.listObjectsOfOwner(owner, listing));
  }

  async getBlobData(name: string): Promise<Uint8Array | null> {
    return this.#call(() => this.#data.getBlobData(name));
  }

  async putBlobData(name: string, write: BlobWrite): Promise<ObjectRecord> {
    return this.#call(() => this.#data.putBlobData(name, write));
  }

  async putShare(share: ShareRecord): Promise<void> {
    return this.#call(() => this.#data.putShare(share));
  }

  async deleteShare(blobId: string, userId: string): Promise<boolean> {
    return this.#call(() => this.#data.deleteShare(blobId, userId));
  }

  async listShares(blobId: string): Promise<ShareRecord[]> {
    return this.#call(() => this.#data.listShares(blobId));
  }

  async listSharesOfUser(userId: string): Promise<ShareRecord[]> {
    return this.#call(() => this.#data.listSharesOfUser(userId));
  }

  async putKeyGrant(grant: KeyGrantRecord): Promise<void> {
    return this.#call(() => this.#data.putKeyGrant(grant));
  }

  async listKeyGrants(blobId: string, userId?: string): Promise<KeyGrantRecord[]> {
    return this.#call(() => this.#data.listKeyGrants(blobId, userId));
  }

  async appendMemberList(record: MemberListRecord): Promise<boolean> {
    return this.#call(() => this.#data.appendMemberList(record));
  }

  async listMemberLists(blobId: string): Promise<MemberListRecord[]> {
    return this.#call(() => this.#data.listMemberLists(blobId));
  }

  async putSignedHead(record: SignedHeadRecord): Promise<void> {
    return this.#call(() => this.#data.putSignedHead(record));
  }

  async listSignedHeads(blobId: string): Promise<SignedHeadRecord[]> {
    return this.#call(() => this.#data.listSignedHeads(blobId));
  }

  async putWrappedKey(key: WrappedKeyRecord): Promise<boolean> {
    return this.#call(() => this.#data.putWrappedKey(key));
  }

  async listWrappedKeys(docName: string): Promise<WrappedKeyRecord[]> {
    return this.#call(() => this.#data.listWrappedKeys(docName));
  }

  async auditHead(): Promise<AuditHead | null> {
    return this.#call(() => this.#data.auditHead());
  }

  async queryAudit(query: AuditQuery): Promise<AuditRecord[]> {
    return this.#call(() => this.#data.queryAudit(query));
  }

  async replaceGrants(source: string, grants: readonly ModGrant[]): Promise<void> {
    return this.#call(() => this.#data.replaceGrants(source, grants));
  }

  async listGrants(source?: string): Promise<ModGrant[]> {
    return this.#call(() => this.#data.listGrants(source));
  }

  async appendAudit(seal: (head: AuditHead | null) => AuditRecord): Promise<AuditRecord> {
    return this.#call(() => this.#data.appendAudit(seal));
  }

  async transaction<T>(fn: (tx: RelayStoreTx) => Promise<T>): Promise<T> {
    return this.#gate.exclusive(async (ticket) => {
      this.#open();
      const before = this.#data.snapshot();
      const tx = forwardRelayStoreTx(this.#data, (call) => {
        if (!ticket.open) throw new SyncError('Internal', 'this transaction has ended; its tx is closed');
        return call();
      });
      try {
        return await fn(tx);
      } catch (error) {
        this.#data.restore(before);
        throw error;
      }
    });
  }

  async close(): Promise<void> {
    // Through the gate: an open transaction finishes first.
    await this.#gate.run(() => {
      this.#closed = true;
    });
  }

  #call<T>(step: () => Promise<T>): Promise<T> {
    return this.#gate.run(() => {
      this.#open();
      return step();
    });
  }

  #open(): void {
    if (this.#closed) throw new SyncError('Unavailable', 'the relay store is closed');
  }
}

/** Everything a snapshot restores: the indexes, and how long the append-only audit log was. */
interface Snapshot {
  readonly users: Map<string, UserRecord>;
  readonly keys: Map<string, KeyRecord>;
  readonly retired: Map<string, RetiredKeyRecord>;
  readonly deviceLists: Map<string, Map<number, DeviceListRecord>>;
  readonly objects: Map<string, ObjectRecord>;
  readonly blobData: Map<string, Uint8Array>;
  readonly blobHeads: Map<string, number>;
  readonly shares: Map<string, Map<string, ShareRecord>>;
  readonly keyGrants: Map<string, Map<string, KeyGrantRecord>>;
  readonly memberLists: Map<string, Map<number, MemberListRecord>>;
  readonly signedHeads: Map<string, Map<string, SignedHeadRecord>>;
  readonly wrappedKeys: Map<string, Map<string, WrappedKeyRecord>>;
  readonly auditLength: number;
  readonly auditHead: AuditHead | null;
  readonly grants: Map<string, ModGrant[]>;
}

/** The data of a {@link MemoryRelayStore} and the contract's methods over it, without admission control. */
class MemoryRelayData implements RelayStoreTx {
  #users = new Map<string, UserRecord>();
  #keys = new Map<string, KeyRecord>();
  /** retired signing key → its retirement. */
  #retired = new Map<string, RetiredKeyRecord>();
  /** user id → version → device list version. */
  #deviceLists = new Map<string, Map<number, DeviceListRecord>>();
  #objects = new Map<string, ObjectRecord>();
  #blobData = new Map<string, Uint8Array>();
  /** name → the highest blob version it ever had; outlives the object, so versions never repeat. */
  #blobHeads = new Map<string, number>();
  /** blob id → user id → share. */
  #shares = new Map<string, Map<string, ShareRecord>>();
  /** blob id → `${user id} ${epoch}` → grant. */
  #keyGrants = new Map<string, Map<string, KeyGrantRecord>>();
  /** blob id → version → member list version. */
  #memberLists = new Map<string, Map<number, MemberListRecord>>();
  /** blob id → user id → signed head. */
  #signedHeads = new Map<string, Map<string, SignedHeadRecord>>();
  /** doc name → key id → wrapped key. */
  #wrappedKeys = new Map<string, Map<string, WrappedKeyRecord>>();
  readonly #audit: AuditRecord[] = [];
  #auditHead: AuditHead | null = null;
  #grants = new Map<string, ModGrant[]>();

  /** A copy of every index. Records and byte arrays are shared: they are replaced, never changed in place. */
  snapshot(): Snapshot {
    return {
      users: new Map(this.#users),
      keys: new Map(this.#keys),
      retired: new Map(this.#retired),
      deviceLists: copyNested(this.#deviceLists),
      objects: new Map(this.#objects),
      blobData: new Map(this.#blobData),
      blobHeads: new Map(this.#blobHeads),
      shares: copyNested(this.#shares),
      keyGrants: copyNested(this.#keyGrants),
      memberLists: copyNested(this.#memberLists),
      signedHeads: copyNested(this.#signedHeads),
      wrappedKeys: copyNested(this.#wrappedKeys),
      auditLength: this.#audit.length,
      auditHead: this.#auditHead,
      grants: new Map(this.#grants),
    };
  }

  /** Puts back what {@link snapshot} took; the snapshot must not be used again. */
  restore(s: Snapshot): void {
    this.#users = s.users;
    this.#keys = s.keys;
    this.#retired = s.retired;
    this.#deviceLists = s.deviceLists;
    this.#objects = s.objects;
    this.#blobData = s.blobData;
    this.#blobHeads = s.blobHeads;
    this.#shares = s.shares;
    this.#keyGrants = s.keyGrants;
    this.#memberLists = s.memberLists;
    this.#signedHeads = s.signedHeads;
    this.#wrappedKeys = s.wrappedKeys;
    this.#audit.length = s.auditLength;
    this.#auditHead = s.auditHead;
    this.#grants = s.grants;
  }

  async createUser(user: UserRecord, firstKey: KeyRecord): Promise<void> {
    if (this.#users.has(user.userId)) throw new SyncError('Conflict', `user ${user.userId} exists`);
    if (this.#keys.has(firstKey.keyHash)) throw new SyncError('Conflict', 'that key exists');
    if (firstKey.userId !== user.userId)
      throw new SyncError('BadRequest', 'the first key must belong to the new user');
    this.#checkSignPkFree(user.signPk, user.userId);
    this.#users.set(user.userId, { ...user });
    this.#keys.set(firstKey.keyHash, keyCopy(firstKey));
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    const user = this.#users.get(userId);
    return user ? { ...user } : null;
  }

  async findUserBySignPk(signPk: string): Promise<UserRecord | null> {
    for (const user of this.#users.values()) if (user.signPk === signPk) return { ...user };
    return null;
  }

  async setUserKeys(userId: string, keys: UserKeys): Promise<boolean> {
    const user = this.#users.get(userId);
    if (!user) return false;
    this.#checkSignPkFree(keys.signPk, userId);
    this.#users.set(userId, { ...user, signPk: keys.signPk, boxPk: keys.boxPk });
    return true;
  }

  async retireSignKey(record: RetiredKeyRecord): Promise<boolean> {
    if (this.#retired.has(record.signPk)) return false;
    this.#retired.set(record.signPk, {
      ...record,
      signature: record.signature.slice(),
      countersignature: record.countersignature.slice(),
    });
    return true;
  }

  async appendDeviceList(record: DeviceListRecord): Promise<boolean> {
    const lists = this.#deviceLists.get(record.userId) ?? new Map<number, DeviceListRecord>();
    this.#deviceLists.set(record.userId, lists);
    if (lists.has(record.version)) return false;
    lists.set(record.version, { ...record, list: record.list.slice() });
    return true;
  }

  async listDeviceLists(userId: string): Promise<DeviceListRecord[]> {
    return [...(this.#deviceLists.get(userId)?.values() ?? [])]
      .sort((a, b) => a.version - b.version)
      .map((r) => ({ ...r, list: r.list.slice() }));
  }

  async getRetiredKey(signPk: string): Promise<RetiredKeyRecord | null> {
    const record = this.#retired.get(signPk);
    return record
      ? { ...record, signature: record.signature.slice(), countersignature: record.countersignature.slice() }
      : null;
  }

  async listRetiredKeys(userId: string): Promise<RetiredKeyRecord[]> {
    return [...this.#retired.values()]
      .filter((r) => r.userId === userId)
      .sort((a, b) => a.retiredAt - b.retiredAt || (a.signPk < b.signPk ? -1 : a.signPk > b.signPk ? 1 : 0))
      .map((r) => ({ ...r, signature: r.signature.slice(), countersignature: r.countersignature.slice() }));
  }

  async setUserLevel(userId: string, level: Level): Promise<boolean> {
    const user = this.#users.get(userId);
    if (!user) return false;
    this.#users.set(userId, { ...user, level });
    return true;
  }

  async countUsers(): Promise<number> {
    return this.#users.size;
  }

  async addKey(key: KeyRecord): Promise<void> {
    if (!this.#users.has(key.userId)) throw new SyncError('NotFound', `no user ${key.userId}`);
    if (this.#keys.has(key.keyHash)) throw new SyncError('Conflict', 'that key exists');
    this.#keys.set(key.keyHash, keyCopy(key));
  }

  async getKey(keyHash: string): Promise<KeyRecord | null> {
    const key = this.#keys.get(keyHash);
    return key ? { ...key } : null;
  }

  async getKeyHolder(keyHash: string): Promise<KeyHolder | null> {
    const key = this.#keys.get(keyHash);
    if (!key) return null;
    const user = this.#users.get(key.userId);
    return { revokedAt: key.revokedAt, user: user ? { userId: user.userId, level: user.level } : null };
  }

  async revokeKey(keyHash: string, at: number): Promise<boolean> {
    const key = this.#keys.get(keyHash);
    if (!key || key.revokedAt !== null) return false;
    this.#keys.set(keyHash, { ...key, revokedAt: at });
    return true;
  }

  async bindKeyToDevice(keyHash: string, deviceId: string): Promise<boolean> {
    const key = this.#keys.get(keyHash);
    if (!key || key.deviceId !== undefined) return false;
    this.#keys.set(keyHash, { ...key, deviceId });
    return true;
  }

  async listKeys(userId: string): Promise<KeyRecord[]> {
    return [...this.#keys.values()]
      .filter((k) => k.userId === userId)
      .sort(
        (a, b) => a.createdAt - b.createdAt || (a.keyHash < b.keyHash ? -1 : a.keyHash > b.keyHash ? 1 : 0),
      )
      .map((k) => ({ ...k }));
  }

  async getObject(name: string): Promise<ObjectRecord | null> {
    const object = this.#objects.get(name);
    return object ? { ...object } : null;
  }

  async createObject(record: ObjectRecord): Promise<ObjectRecord> {
    const existing = this.#objects.get(record.name);
    if (existing) return { ...existing };
    this.#objects.set(record.name, { ...record });
    return { ...record };
  }

  async updateObject(name: string, patch: ObjectPatch): Promise<ObjectRecord | null> {
    const existing = this.#objects.get(name);
    if (!existing) return null;
    const next = { ...existing, ...definedFields(patch) };
    this.#objects.set(name, next);
    return { ...next };
  }

  async deleteObject(name: string): Promise<boolean> {
    if (!this.#objects.delete(name)) return false;
    this.#blobData.delete(name);
    this.#wrappedKeys.delete(name);
    if (name.startsWith('blob/')) {
      this.#shares.delete(name.slice(5));
      this.#keyGrants.delete(name.slice(5));
      this.#memberLists.delete(name.slice(5));
      this.#signedHeads.delete(name.slice(5));
    }
    return true;
  }

  async listObjects(listing: ObjectListing): Promise<ObjectRecord[]> {
    return this.#listWhere(listing, () => true);
  }

  async listObjectsOfOwner(owner: string, listing: ObjectListing): Promise<ObjectRecord[]> {
    return this.#listWhere(listing, (n) => this.#objects.get(n)?.owner === owner);
  }

  #listWhere(listing: ObjectListing, keep: (name: string) => boolean): ObjectRecord[] {
    const names = [...this.#objects.keys()]
      .filter(
        (n) => n.startsWith(listing.prefix) && (listing.after === undefined || n > listing.after) && keep(n),
      )
      .sort();
    return names
      .slice(0, Math.max(0, listing.limit))
      .map((n) => ({ ...(this.#objects.get(n) as ObjectRecord) }));
  }

  async getBlobData(name: string): Promise<Uint8Array | null> {
    return this.#blobData.get(name)?.slice() ?? null;
  }

  async putBlobData(name: string, write: BlobWrite): Promise<ObjectRecord> {
    const existing = this.#objects.get(name);
    const current = existing?.version ?? 0;
    if (write.expectedVersion !== undefined && write.expectedVersion !== current) {
      throw new SyncError('PreconditionFailed', `version is ${current}, not ${write.expectedVersion}`);
    }
    const base = existing ?? { ...write.create, name };
    const next: ObjectRecord = {
      ...base,
      size: write.data.byteLength,
      version: Math.max(current, this.#blobHeads.get(name) ?? 0) + 1,
      updatedAt: write.now,
    };
    this.#objects.set(name, next);
    this.#blobHeads.set(name, next.version);
    this.#blobData.set(name, write.data.slice());
    return { ...next };
  }

  async putShare(share: ShareRecord): Promise<void> {
    const shares = this.#shares.get(share.blobId) ?? new Map<string, ShareRecord>();
    this.#shares.set(share.blobId, shares);
    shares.set(share.userId, { ...share });
  }

  async deleteShare(blobId: string, userId: string): Promise<boolean> {
    const existed = this.#shares.get(blobId)?.delete(userId) ?? false;
    if (existed) {
      const grants = this.#keyGrants.get(blobId);
      for (const slot of [...(grants?.keys() ?? [])]) {
        if (slot.startsWith(`${userId} `)) grants?.delete(slot);
      }
    }
    return existed;
  }

  async listShares(blobId: string): Promise<ShareRecord[]> {
    return [...(this.#shares.get(blobId)?.values() ?? [])]
      .sort((a, b) => (a.userId < b.userId ? -1 : 1))
      .map((s) => ({ ...s }));
  }

  async listSharesOfUser(userId: string): Promise<ShareRecord[]> {
    const mine: ShareRecord[] = [];
    for (const shares of this.#shares.values()) {
      const share = shares.get(userId);
      if (share) mine.push({ ...share });
    }
    return mine.sort((a, b) => (a.blobId < b.blobId ? -1 : a.blobId > b.blobId ? 1 : 0));
  }

  async putKeyGrant(grant: KeyGrantRecord): Promise<void> {
    const grants = this.#keyGrants.get(grant.blobId) ?? new Map<string, KeyGrantRecord>();
    this.#keyGrants.set(grant.blobId, grants);
    grants.set(`${grant.userId} ${grant.epoch}`, copyKeyGrant(grant));
  }

  async listKeyGrants(blobId: string, userId?: string): Promise<KeyGrantRecord[]> {
    return [...(this.#keyGrants.get(blobId)?.values() ?? [])]
      .filter((g) => userId === undefined || g.userId === userId)
      .sort((a, b) => (a.userId === b.userId ? a.epoch - b.epoch : a.userId < b.userId ? -1 : 1))
      .map(copyKeyGrant);
  }

  async appendMemberList(record: MemberListRecord): Promise<boolean> {
    const lists = this.#memberLists.get(record.blobId) ?? new Map<number, MemberListRecord>();
    this.#memberLists.set(record.blobId, lists);
    if (lists.has(record.version)) return false;
    lists.set(record.version, { ...record, list: record.list.slice() });
    return true;
  }

  async listMemberLists(blobId: string): Promise<MemberListRecord[]> {
    return [...(this.#memberLists.get(blobId)?.values() ?? [])]
      .sort((a, b) => a.version - b.version)
      .map((r) => ({ ...r, list: r.list.slice() }));
  }

  async putSignedHead(record: SignedHeadRecord): Promise<void> {
    const heads = this.#signedHeads.get(record.blobId) ?? new Map<string, SignedHeadRecord>();
    this.#signedHeads.set(record.blobId, heads);
    heads.set(record.userId, { ...record, head: record.head.slice() });
  }

  async listSignedHeads(blobId: string): Promise<SignedHeadRecord[]> {
    return [...(this.#signedHeads.get(blobId)?.values() ?? [])]
      .sort((a, b) => (a.userId < b.userId ? -1 : 1))
      .map((r) => ({ ...r, head: r.head.slice() }));
  }

  async putWrappedKey(key: WrappedKeyRecord): Promise<boolean> {
    const keys = this.#wrappedKeys.get(key.docName) ?? new Map<string, WrappedKeyRecord>();
    this.#wrappedKeys.set(key.docName, keys);
    if (keys.has(key.keyId)) return false;
    keys.set(key.keyId, { ...key, wrapped: key.wrapped.slice() });
    return true;
  }

  async listWrappedKeys(docName: string): Promise<WrappedKeyRecord[]> {
    return [...(this.#wrappedKeys.get(docName)?.values() ?? [])]
      .sort((a, b) => a.epoch - b.epoch || (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0))
      .map((k) => ({ ...k, wrapped: k.wrapped.slice() }));
  }

  async appendAudit(seal: (head: AuditHead | null) => AuditRecord): Promise<AuditRecord> {
    const entry = seal(this.#auditHead);
    const expected = (this.#auditHead?.seq ?? 0) + 1;
    if (entry.seq !== expected)
      throw new SyncError('Conflict', `audit entry ${entry.seq} does not follow ${expected - 1}`);
    if (entry.prevHash !== (this.#auditHead?.hash ?? GENESIS_HASH))
      throw new SyncError('Conflict', `audit entry ${entry.seq} does not chain to the head's hash`);
    this.#audit.push({ ...entry });
    this.#auditHead = { seq: entry.seq, hash: entry.hash };
    return { ...entry };
  }

  async auditHead(): Promise<AuditHead | null> {
    return this.#auditHead ? { ...this.#auditHead } : null;
  }

  async queryAudit(query: AuditQuery): Promise<AuditRecord[]> {
    const limit = Math.min(Math.max(0, query.limit ?? MAX_AUDIT_PAGE), MAX_AUDIT_PAGE);
    const out: AuditRecord[] = [];
    for (const entry of this.#audit) {
      if (out.length >= limit) break;
      if (query.afterSeq !== undefined && entry.seq <= query.afterSeq) continue;
      if (query.target !== undefined && entry.target !== query.target) continue;
      if (query.since !== undefined && entry.ts < query.since) continue;
      out.push({ ...entry });
    }
    return out;
  }

  async replaceGrants(source: string, grants: readonly ModGrant[]): Promise<void> {
    if (grants.some((g) => g.source !== source))
      throw new SyncError('BadRequest', `every grant must have source ${source}`);
    if (grants.length === 0) this.#grants.delete(source);
    else this.#grants.set(source, grants.map(copyGrant));
  }

  async listGrants(source?: string): Promise<ModGrant[]> {
    const lists = source === undefined ? [...this.#grants.values()] : [this.#grants.get(source) ?? []];
    return lists.flat().map(copyGrant);
  }

  #checkSignPkFree(signPk: string | null, userId: string): void {
    if (signPk === null) return;
    for (const other of this.#users.values()) {
      if (other.signPk === signPk && other.userId !== userId) {
        throw new SyncError('Conflict', 'that signing key is registered to another user');
      }
    }
  }
}

function copyNested<K, L, V>(outer: Map<K, Map<L, V>>): Map<K, Map<L, V>> {
  return new Map([...outer].map(([key, inner]) => [key, new Map(inner)]));
}

/** A key as the SQL stores keep it: no device id field when it names none. */
function keyCopy(key: KeyRecord): KeyRecord {
  const { keyHash, userId, createdAt, revokedAt, deviceId } = key;
  return { keyHash, userId, createdAt, revokedAt, ...(deviceId === undefined ? {} : { deviceId }) };
}

function copyKeyGrant(grant: KeyGrantRecord): KeyGrantRecord {
  return { ...grant, sealedKey: grant.sealedKey.slice(), grant: grant.grant.slice() };
}

function copyGrant(grant: ModGrant): ModGrant {
  return { ...grant, ...(grant.keys ? { keys: [...grant.keys] } : {}) };
}

/** A patch without its undefined fields, so `{read: undefined}` keeps the current read. */
function definedFields(patch: ObjectPatch): ObjectPatch {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as ObjectPatch;
}
