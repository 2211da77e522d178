/**
 * The SQLite relay store's sharing and document keys: shares, key grants, member lists,
 * signed heads and wrapped document keys.
 */

import type {
  KeyGrantRecord,
  MemberListRecord,
  ShareRecord,
  SignedHeadRecord,
  WrappedKeyRecord,
} from '@scopesync/core';
import type Database from 'better-sqlite3';
import { SqliteObjectQueries } from './sqlite-object-queries.ts';
import { type KeyGrantSql, type ShareSql, toKeyGrant, type WrappedKeySql } from './sqlite-relay-rows.ts';

/**
 * The statements of shares, key grants, member lists, signed heads and wrapped keys. Run once
 * per store: better-sqlite3 caches nothing by itself.
 */
function prepare(db: Database.Database) {
  return {
    putShare: db.prepare<[string, string, string, string, number]>(
      `INSERT INTO shares (blob_id, user_id, level, granted_by, granted_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (blob_id, user_id) DO UPDATE SET level = excluded.level, granted_by = excluded.granted_by,
       granted_at = excluded.granted_at`,
    ),
    deleteShare: db.prepare<[string, string]>('DELETE FROM shares WHERE blob_id = ? AND user_id = ?'),
    listShares: db.prepare<[string], ShareSql>('SELECT * FROM shares WHERE blob_id = ? ORDER BY user_id'),
    listSharesOfUser: db.prepare<[string], ShareSql>(
      'SELECT * FROM shares WHERE user_id = ? ORDER BY blob_id',
    ),
    putKeyGrant: db.prepare<KeyGrantSql>(
      `INSERT INTO key_grants (blob_id, user_id, epoch, sealed_key, grant_data, granted_by, granted_at)
       VALUES (@blob_id, @user_id, @epoch, @sealed_key, @grant_data, @granted_by, @granted_at)
       ON CONFLICT (blob_id, user_id, epoch) DO UPDATE SET sealed_key = excluded.sealed_key,
       grant_data = excluded.grant_data, granted_by = excluded.granted_by, granted_at = excluded.granted_at`,
    ),
    keyGrantsOfBlob: db.prepare<[string], KeyGrantSql>(
      'SELECT * FROM key_grants WHERE blob_id = ? ORDER BY user_id, epoch',
    ),
    keyGrantsOfUser: db.prepare<[string, string], KeyGrantSql>(
      'SELECT * FROM key_grants WHERE blob_id = ? AND user_id = ? ORDER BY epoch',
    ),
    appendMemberList: db.prepare<[string, number, number, string, Uint8Array, number]>(
      `INSERT INTO member_lists (blob_id, version, epoch, key_id, list, created_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (blob_id, version) DO NOTHING`,
    ),
    memberLists: db.prepare<
      [string],
      { blob_id: string; version: number; epoch: number; key_id: string; list: Buffer; created_at: number }
    >('SELECT * FROM member_lists WHERE blob_id = ? ORDER BY version'),
    putSignedHead: db.prepare<[string, string, Uint8Array, number]>(
      `INSERT INTO signed_heads (blob_id, user_id, head, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (blob_id, user_id) DO UPDATE SET head = excluded.head, updated_at = excluded.updated_at`,
    ),
    signedHeads: db.prepare<[string], { blob_id: string; user_id: string; head: Buffer; updated_at: number }>(
      'SELECT * FROM signed_heads WHERE blob_id = ? ORDER BY user_id',
    ),
    putWrappedKey: db.prepare<[string, string, number, Uint8Array, number]>(
      `INSERT INTO wrapped_keys (doc_name, key_id, epoch, wrapped, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (doc_name, key_id) DO NOTHING`,
    ),
    wrappedKeys: db.prepare<[string], WrappedKeySql>(
      'SELECT * FROM wrapped_keys WHERE doc_name = ? ORDER BY epoch, key_id',
    ),
  };
}

/** The RelayStoreTx methods of shares, key grants, member lists, signed heads and wrapped keys. */
export abstract class SqliteSharingQueries extends SqliteObjectQueries {
  readonly #sql = prepare(this.handle.db);

  async putShare(share: ShareRecord): Promise<void> {
    this.run('share', () => {
      this.#sql.putShare.run(share.blobId, share.userId, share.level, share.grantedBy, share.grantedAt);
    });
  }

  async deleteShare(blobId: string, userId: string): Promise<boolean> {
    // shares_delete_cascade takes the user's key grants for the blob along.
    return this.run('revoke the share', () => this.#sql.deleteShare.run(blobId, userId).changes > 0);
  }

  async listShares(blobId: string): Promise<ShareRecord[]> {
    return this.listSharesNow(blobId);
  }

  /** {@link listShares}, answered in the caller's turn. */
  listSharesNow(blobId: string): ShareRecord[] {
    return this.run('list the shares', () => this.#sql.listShares.all(blobId).map(shareOfRow));
  }

  async listSharesOfUser(userId: string): Promise<ShareRecord[]> {
    return this.run('list the shares of', () => this.#sql.listSharesOfUser.all(userId).map(shareOfRow));
  }

  async putKeyGrant(grant: KeyGrantRecord): Promise<void> {
    this.run('store the key grant of', () => {
      this.#sql.putKeyGrant.run({
        blob_id: grant.blobId,
        user_id: grant.userId,
        epoch: grant.epoch,
        sealed_key: Buffer.from(grant.sealedKey),
        grant_data: Buffer.from(grant.grant),
        granted_by: grant.grantedBy,
        granted_at: grant.grantedAt,
      });
    });
  }

  async listKeyGrants(blobId: string, userId?: string): Promise<KeyGrantRecord[]> {
    return this.run('list the key grants of', () =>
      (userId === undefined
        ? this.#sql.keyGrantsOfBlob.all(blobId)
        : this.#sql.keyGrantsOfUser.all(blobId, userId)
      ).map(toKeyGrant),
    );
  }

  async appendMemberList(record: MemberListRecord): Promise<boolean> {
    return this.run(
      'store the member list of',
      () =>
        this.#sql.appendMemberList.run(
          record.blobId,
          record.version,
          record.epoch,
          record.keyId,
          record.list,
          record.createdAt,
        ).changes > 0,
    );
  }

  async listMemberLists(blobId: string): Promise<MemberListRecord[]> {
    return this.run('list the member lists of', () =>
      this.#sql.memberLists.all(blobId).map((r) => ({
        blobId: r.blob_id,
        version: r.version,
        epoch: r.epoch,
        keyId: r.key_id,
        list: new Uint8Array(r.list),
        createdAt: r.created_at,
      })),
    );
  }

  async putSignedHead(record: SignedHeadRecord): Promise<void> {
    this.run('store the signed head of', () => {
      this.#sql.putSignedHead.run(record.blobId, record.userId, record.head, record.updatedAt);
    });
  }

  async listSignedHeads(blobId: string): Promise<SignedHeadRecord[]> {
    return this.run('list the signed heads of', () =>
      this.#sql.signedHeads.all(blobId).map((r) => ({
        blobId: r.blob_id,
        userId: r.user_id,
        head: new Uint8Array(r.head),
        updatedAt: r.updated_at,
      })),
    );
  }

  async putWrappedKey(key: WrappedKeyRecord): Promise<boolean> {
    return this.run(
      'store the wrapped key of',
      () =>
        this.#sql.putWrappedKey.run(key.docName, key.keyId, key.epoch, key.wrapped, key.createdAt).changes >
        0,
    );
  }

  async listWrappedKeys(docName: string): Promise<WrappedKeyRecord[]> {
    return this.run('list the wrapped keys of', () =>
      this.#sql.wrappedKeys.all(docName).map((r) => ({
        docName: r.doc_name,
        keyId: r.key_id,
        epoch: r.epoch,
        wrapped: new Uint8Array(r.wrapped),
        createdAt: r.created_at,
      })),
    );
  }
}

function shareOfRow(r: ShareSql): ShareRecord {
  return {
    blobId: r.blob_id,
    userId: r.user_id,
    level: r.level as ShareRecord['level'],
    grantedBy: r.granted_by,
    grantedAt: r.granted_at,
  };
}
