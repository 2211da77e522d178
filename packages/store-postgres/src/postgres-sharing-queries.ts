/**
 * The PostgreSQL relay store's sharing and document keys: shares, key grants, member
 * lists, signed heads and wrapped document keys.
 */

import type {
  KeyGrantRecord,
  MemberListRecord,
  ShareRecord,
  SignedHeadRecord,
  WrappedKeyRecord,
} from '@scopesync/core';
import { PostgresObjectQueries } from './postgres-object-queries.ts';
import { toSafeInteger } from './postgres-pool.ts';
import { bytes, type KeyGrantRow, type ShareRow, type WrappedKeyRow } from './postgres-relay-rows.ts';

/** The RelayStore methods of shares, key grants, member lists, signed heads and wrapped keys. */
export abstract class PostgresSharingQueries extends PostgresObjectQueries {
  async putShare(share: ShareRecord): Promise<void> {
    await this.x.one('share', async (q) => {
      await q.query(this.sql.putShare, [
        share.blobId,
        share.userId,
        share.level,
        share.grantedBy,
        share.grantedAt,
      ]);
    });
  }

  async deleteShare(blobId: string, userId: string): Promise<boolean> {
    return this.x.atomic('revoke the share', async (q) => {
      const existed = ((await q.query(this.sql.deleteShare, [blobId, userId])).rowCount ?? 0) > 0;
      if (existed) await q.query(this.sql.deleteKeyGrantsOfUser, [blobId, userId]);
      return existed;
    });
  }

  async listShares(blobId: string): Promise<ShareRecord[]> {
    const rows = await this.x.one(
      'list the shares',
      async (q) => (await q.query<ShareRow>(this.sql.listShares, [blobId])).rows,
    );
    return rows.map(shareOfRow);
  }

  async listSharesOfUser(userId: string): Promise<ShareRecord[]> {
    const rows = await this.x.one(
      'list the shares of',
      async (q) => (await q.query<ShareRow>(this.sql.listSharesOfUser, [userId])).rows,
    );
    return rows.map(shareOfRow);
  }

  async putKeyGrant(grant: KeyGrantRecord): Promise<void> {
    const values = [
      grant.blobId,
      grant.userId,
      grant.epoch,
      Buffer.from(grant.sealedKey),
      Buffer.from(grant.grant),
      grant.grantedBy,
      grant.grantedAt,
    ];
    await this.x.one('store the key grant', async (q) => {
      await q.query(this.sql.putKeyGrant, values);
    });
  }

  async listKeyGrants(blobId: string, userId?: string): Promise<KeyGrantRecord[]> {
    const rows = await this.x.one('list the key grants', async (q) => {
      return userId === undefined
        ? (await q.query<KeyGrantRow>(this.sql.keyGrantsOfBlob, [blobId])).rows
        : (await q.query<KeyGrantRow>(this.sql.keyGrantsOfUser, [blobId, userId])).rows;
    });
    return rows.map((r) => ({
      blobId: r.blob_id,
      userId: r.user_id,
      epoch: r.epoch,
      sealedKey: bytes(r.sealed_key),
      grant: bytes(r.grant_data),
      grantedBy: r.granted_by,
      grantedAt: toSafeInteger(r.granted_at, 'grantedAt'),
    }));
  }

  async appendMemberList(record: MemberListRecord): Promise<boolean> {
    const values = [
      record.blobId,
      record.version,
      record.epoch,
      record.keyId,
      Buffer.from(record.list),
      record.createdAt,
    ];
    return this.x.one(
      'store the member list',
      async (q) => ((await q.query(this.sql.appendMemberList, values)).rowCount ?? 0) > 0,
    );
  }

  async listMemberLists(blobId: string): Promise<MemberListRecord[]> {
    const rows = await this.x.one('list the member lists', async (q) => {
      return (
        await q.query<{
          blob_id: string;
          version: number;
          epoch: string | number;
          key_id: string;
          list: Buffer;
          created_at: bigint;
        }>(this.sql.memberLists, [blobId])
      ).rows;
    });
    return rows.map((r) => ({
      blobId: r.blob_id,
      version: r.version,
      epoch: Number(r.epoch),
      keyId: r.key_id,
      list: bytes(r.list),
      createdAt: toSafeInteger(r.created_at, 'createdAt'),
    }));
  }

  async putSignedHead(record: SignedHeadRecord): Promise<void> {
    const values = [record.blobId, record.userId, Buffer.from(record.head), record.updatedAt];
    await this.x.one('store the signed head', async (q) => {
      await q.query(this.sql.putSignedHead, values);
    });
  }

  async listSignedHeads(blobId: string): Promise<SignedHeadRecord[]> {
    const rows = await this.x.one('list the signed heads', async (q) => {
      return (
        await q.query<{ blob_id: string; user_id: string; head: Buffer; updated_at: bigint }>(
          this.sql.signedHeads,
          [blobId],
        )
      ).rows;
    });
    return rows.map((r) => ({
      blobId: r.blob_id,
      userId: r.user_id,
      head: bytes(r.head),
      updatedAt: toSafeInteger(r.updated_at, 'updatedAt'),
    }));
  }

  async putWrappedKey(key: WrappedKeyRecord): Promise<boolean> {
    const values = [key.docName, key.keyId, key.epoch, Buffer.from(key.wrapped), key.createdAt];
    return this.x.one(
      'store the wrapped key',
      async (q) => ((await q.query(this.sql.putWrappedKey, values)).rowCount ?? 0) > 0,
    );
  }

  async listWrappedKeys(docName: string): Promise<WrappedKeyRecord[]> {
    const rows = await this.x.one(
      'list the wrapped keys',
      async (q) => (await q.query<WrappedKeyRow>(this.sql.wrappedKeys, [docName])).rows,
    );
    return rows.map((r) => ({
      docName: r.doc_name,
      keyId: r.key_id,
      epoch: r.epoch,
      wrapped: bytes(r.wrapped),
      createdAt: toSafeInteger(r.created_at, 'createdAt'),
    }));
  }
}

function shareOfRow(r: ShareRow): ShareRecord {
  return {
    blobId: r.blob_id,
    userId: r.user_id,
    level: r.level as ShareRecord['level'],
    grantedBy: r.granted_by,
    grantedAt: toSafeInteger(r.granted_at, 'grantedAt'),
  };
}
