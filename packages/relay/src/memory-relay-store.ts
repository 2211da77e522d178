import {
  type AuditHead,
  type AuditQuery,
  type AuditRecord,
  type BlobWrite,
  type KeyGrantRecord,
  type KeyRecord,
  type Level,
  type ModGrant,
  type ObjectListing,
  type ObjectPatch,
  type ObjectRecord,
  type RelayStore,
  type ShareRecord,
  SyncError,
  type UserKeys,
  type UserRecord,
  type WrappedKeyRecord,
} from '@scopesync/core';

/** Most entries one audit query returns. */
const MAX_AUDIT_PAGE = 10_000;

/**
 * A {@link RelayStore} in memory: the reference implementation, for unit tests and
 * ephemeral relays. Everything is lost on close.
 */
export class MemoryRelayStore implements RelayStore {
  readonly #users = new Map<string, UserRecord>();
  readonly #keys = new Map<string, KeyRecord>();
  readonly #objects = new Map<string, ObjectRecord>();
  readonly #blobData = new Map<string, Uint8Array>();
  /** name → the highest blob version it ever had; outlives the object, so versions never repeat. */
  readonly #blobHeads = new Map<string, number>();
  /** blob id → user id → share. */
  readonly #shares = new Map<string, Map<string, ShareRecord>>();
  /** blob id → `${user id} ${epoch}` → grant. */
  readonly #keyGrants = new Map<string, Map<string, KeyGrantRecord>>();
  /** doc name → key id → wrapped key. */
  readonly #wrappedKeys = new Map<string, Map<string, WrappedKeyRecord>>();
  readonly #audit: AuditRecord[] = [];
  #auditHead: AuditHead | null = null;
  readonly #grants = new Map<string, ModGrant[]>();
  #closed = false;

  async createUser(user: UserRecord, firstKey: KeyRecord): Promise<void> {
    this.#open();
    if (this.#users.has(user.userId)) throw new SyncError('Conflict', `user ${user.userId} exists`);
    if (this.#keys.has(firstKey.keyHash)) throw new SyncError('Conflict', 'that key exists');
    if (firstKey.userId !== user.userId)
      throw new SyncError('BadRequest', 'the first key must belong to the new user');
    this.#checkSignPkFree(user.signPk, user.userId);
    this.#users.set(user.userId, { ...user });
    this.#keys.set(firstKey.keyHash, { ...firstKey });
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    this.#open();
    const user = this.#users.get(userId);
    return user ? { ...user } : null;
  }

  async findUserBySignPk(signPk: string): Promise<UserRecord | null> {
    this.#open();
    let found: UserRecord | null = null;
    // Oldest first, like the SQLite store: a relay that predates the uniqueness rule may hold duplicates.
    for (const user of this.#users.values()) {
      if (user.signPk !== signPk) continue;
      if (!found || user.createdAt < found.createdAt) found = user;
    }
    return found ? { ...found } : null;
  }

  async setUserKeys(userId: string, keys: UserKeys): Promise<boolean> {
    this.#open();
    const user = this.#users.get(userId);
    if (!user) return false;
    this.#checkSignPkFree(keys.signPk, userId);
    this.#users.set(userId, { ...user, signPk: keys.signPk, boxPk: keys.boxPk });
    return true;
  }

  async setUserLevel(userId: string, level: Level): Promise<boolean> {
    this.#open();
    const user = this.#users.get(userId);
    if (!user) return false;
    this.#users.set(userId, { ...user, level });
    return true;
  }

  async countUsers(): Promise<number> {
    this.#open();
    return this.#users.size;
  }

  async addKey(key: KeyRecord): Promise<void> {
    this.#open();
    if (!this.#users.has(key.userId)) throw new SyncError('NotFound', `no user ${key.userId}`);
    if (this.#keys.has(key.keyHash)) throw new SyncError('Conflict', 'that key exists');
    this.#keys.set(key.keyHash, { ...key });
  }

  async getKey(keyHash: string): Promise<KeyRecord | null> {
    this.#open();
    const key = this.#keys.get(keyHash);
    return key ? { ...key } : null;
  }

  async revokeKey(keyHash: string, at: number): Promise<boolean> {
    this.#open();
    const key = this.#keys.get(keyHash);
    if (!key || key.revokedAt !== null) return false;
    this.#keys.set(keyHash, { ...key, revokedAt: at });
    return true;
  }

  async getObject(name: string): Promise<ObjectRecord | null> {
    this.#open();
    const object = this.#objects.get(name);
    return object ? { ...object } : null;
  }

  async createObject(record: ObjectRecord): Promise<ObjectRecord> {
    this.#open();
    const existing = this.#objects.get(record.name);
    if (existing) return { ...existing };
    this.#objects.set(record.name, { ...record });
    return { ...record };
  }

  async updateObject(name: string, patch: ObjectPatch): Promise<ObjectRecord | null> {
    this.#open();
    const existing = this.#objects.get(name);
    if (!existing) return null;
    const next = { ...existing, ...definedFields(patch) };
    this.#objects.set(name, next);
    return { ...next };
  }

  async deleteObject(name: string): Promise<boolean> {
    this.#open();
    const existed = this.#objects.delete(name);
    this.#blobData.delete(name);
    this.#wrappedKeys.delete(name);
    if (name.startsWith('blob/')) {
      this.#shares.delete(name.slice(5));
      this.#keyGrants.delete(name.slice(5));
    }
    return existed;
  }

  async listObjects(listing: ObjectListing): Promise<ObjectRecord[]> {
    this.#open();
    const names = [...this.#objects.keys()]
      .filter((n) => n.startsWith(listing.prefix) && (listing.after === undefined || n > listing.after))
      .sort();
    return names
      .slice(0, Math.max(0, listing.limit))
      .map((n) => ({ ...(this.#objects.get(n) as ObjectRecord) }));
  }

  async getBlobData(name: string): Promise<Uint8Array | null> {
    this.#open();
    return this.#blobData.get(name)?.slice() ?? null;
  }

  async putBlobData(name: string, write: BlobWrite): Promise<ObjectRecord> {
    this.#open();
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
    this.#open();
    const shares = this.#shares.get(share.blobId) ?? new Map<string, ShareRecord>();
    this.#shares.set(share.blobId, shares);
    shares.set(share.userId, { ...share });
  }

  async deleteShare(blobId: string, userId: string): Promise<boolean> {
    this.#open();
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
    this.#open();
    return [...(this.#shares.get(blobId)?.values() ?? [])]
      .sort((a, b) => (a.userId < b.userId ? -1 : 1))
      .map((s) => ({ ...s }));
  }

  async putKeyGrant(grant: KeyGrantRecord): Promise<void> {
    this.#open();
    const grants = this.#keyGrants.get(grant.blobId) ?? new Map<string, KeyGrantRecord>();
    this.#keyGrants.set(grant.blobId, grants);
    grants.set(`${grant.userId} ${grant.epoch}`, copyKeyGrant(grant));
  }

  async listKeyGrants(blobId: string, userId?: string): Promise<KeyGrantRecord[]> {
    this.#open();
    return [...(this.#keyGrants.get(blobId)?.values() ?? [])]
      .filter((g) => userId === undefined || g.userId === userId)
      .sort((a, b) => (a.userId === b.userId ? a.epoch - b.epoch : a.userId < b.userId ? -1 : 1))
      .map(copyKeyGrant);
  }

  async putWrappedKey(key: WrappedKeyRecord): Promise<boolean> {
    this.#open();
    const keys = this.#wrappedKeys.get(key.docName) ?? new Map<string, WrappedKeyRecord>();
    this.#wrappedKeys.set(key.docName, keys);
    if (keys.has(key.keyId)) return false;
    keys.set(key.keyId, { ...key, wrapped: key.wrapped.slice() });
    return true;
  }

  async listWrappedKeys(docName: string): Promise<WrappedKeyRecord[]> {
    this.#open();
    return [...(this.#wrappedKeys.get(docName)?.values() ?? [])]
      .sort((a, b) => a.epoch - b.epoch || (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0))
      .map((k) => ({ ...k, wrapped: k.wrapped.slice() }));
  }

  async appendAudit(seal: (head: AuditHead | null) => AuditRecord): Promise<AuditRecord> {
    this.#open();
    const entry = seal(this.#auditHead);
    const expected = (this.#auditHead?.seq ?? 0) + 1;
    if (entry.seq !== expected)
      throw new SyncError('Conflict', `audit entry ${entry.seq} does not follow ${expected - 1}`);
    this.#audit.push({ ...entry });
    this.#auditHead = { seq: entry.seq, hash: entry.hash };
    return { ...entry };
  }

  async auditHead(): Promise<AuditHead | null> {
    this.#open();
    return this.#auditHead ? { ...this.#auditHead } : null;
  }

  async queryAudit(query: AuditQuery): Promise<AuditRecord[]> {
    this.#open();
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
    this.#open();
    if (grants.some((g) => g.source !== source))
      throw new SyncError('BadRequest', `every grant must have source ${source}`);
    if (grants.length === 0) this.#grants.delete(source);
    else this.#grants.set(source, grants.map(copyGrant));
  }

  async listGrants(source?: string): Promise<ModGrant[]> {
    this.#open();
    const lists = source === undefined ? [...this.#grants.values()] : [this.#grants.get(source) ?? []];
    return lists.flat().map(copyGrant);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #open(): void {
    if (this.#closed) throw new SyncError('Unavailable', 'the relay store is closed');
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
