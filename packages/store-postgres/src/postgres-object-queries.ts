/**
 * The PostgreSQL relay store's objects: their metadata rows and a blob's raw bytes with
 * its version.
 */

import {
  type BlobWrite,
  type ObjectListing,
  type ObjectPatch,
  type ObjectRecord,
  SyncError,
} from '@scopesync/core';
import { PostgresAccountQueries } from './postgres-account-queries.ts';
import { toSafeInteger } from './postgres-pool.ts';
import { bytes, type ObjectRow, objectValues, toObject } from './postgres-relay-rows.ts';

/** How often createObject tries again when the row it lost a race to is deleted before it can read it. */
const CREATE_OBJECT_ATTEMPTS = 3;

/** The RelayStore methods of object metadata and raw blob bytes. */
export abstract class PostgresObjectQueries extends PostgresAccountQueries {
  async getObject(name: string): Promise<ObjectRecord | null> {
    const rows = await this.x.one(
      'read the object',
      async (q) => (await q.query<ObjectRow>(this.sql.getObject, [name])).rows,
    );
    return rows[0] ? toObject(rows[0]) : null;
  }

  async createObject(record: ObjectRecord): Promise<ObjectRecord> {
    return this.x.one('create the object', async (q) => {
      for (let attempt = 1; ; attempt++) {
        const inserted = await q.query<ObjectRow>(this.sql.insertObject, objectValues(record));
        if (inserted.rows[0]) return toObject(inserted.rows[0]);
        // It exists: the existing one wins. Read in a statement of its own, which sees it committed.
        const existing = await q.query<ObjectRow>(this.sql.getObject, [record.name]);
        if (existing.rows[0]) return toObject(existing.rows[0]);
        // Deleted between the two statements: try again.
        if (attempt >= CREATE_OBJECT_ATTEMPTS) {
          throw new SyncError('Unavailable', `${record.name} keeps being created and deleted; try again`);
        }
      }
    });
  }

  async updateObject(name: string, patch: ObjectPatch): Promise<ObjectRecord | null> {
    const rows = await this.x.one('update the object', async (q) => {
      const values = [
        name,
        patch.owner ?? null,
        patch.read ?? null,
        patch.write ?? null,
        patch.encrypted ?? null,
        patch.minEpoch ?? null,
        patch.updatedAt ?? null,
      ];
      return (await q.query<ObjectRow>(this.sql.updateObject, values)).rows;
    });
    return rows[0] ? toObject(rows[0]) : null;
  }

  async deleteObject(name: string): Promise<boolean> {
    return this.x.atomic('delete the object', async (q) => {
      if (name.startsWith('blob/')) {
        const blobId = name.slice('blob/'.length);
        await q.query(this.sql.deleteShares, [blobId]);
        await q.query(this.sql.deleteKeyGrantsOfBlob, [blobId]);
        await q.query(this.sql.deleteMemberLists, [blobId]);
        await q.query(this.sql.deleteSignedHeads, [blobId]);
      }
      await q.query(this.sql.deleteWrappedKeys, [name]);
      // blob_data goes with it (ON DELETE CASCADE); blob_heads stays, so versions never repeat.
      return ((await q.query(this.sql.deleteObject, [name])).rowCount ?? 0) > 0;
    });
  }

  async listObjects(listing: ObjectListing): Promise<ObjectRecord[]> {
    const limit = Math.max(0, Math.floor(listing.limit));
    const rows = await this.x.one('list the objects', async (q) => {
      return (await q.query<ObjectRow>(this.sql.listObjects, [listing.prefix, listing.after ?? '', limit]))
        .rows;
    });
    return rows.map(toObject);
  }

  async listObjectsOfOwner(owner: string, listing: ObjectListing): Promise<ObjectRecord[]> {
    const limit = Math.max(0, Math.floor(listing.limit));
    const rows = await this.x.one('list the objects of', async (q) => {
      const values = [listing.prefix, listing.after ?? '', limit, owner];
      return (await q.query<ObjectRow>(this.sql.listObjectsOfOwner, values)).rows;
    });
    return rows.map(toObject);
  }

  async getBlobData(name: string): Promise<Uint8Array | null> {
    const rows = await this.x.one(
      'read the blob bytes',
      async (q) => (await q.query<{ data: Buffer }>(this.sql.getBlobData, [name])).rows,
    );
    return rows[0] ? bytes(rows[0].data) : null;
  }

  async putBlobData(name: string, write: BlobWrite): Promise<ObjectRecord> {
    const data = Buffer.from(write.data); // the store keeps its own copy, taken now
    return this.x.atomic('write the blob bytes', async (q) => {
      // Create it if missing, then lock the row: concurrent writers of one blob, on any relay,
      // take turns from here, so the version check and the bump cannot interleave.
      await q.query(this.sql.insertObject, objectValues({ ...write.create, name, size: 0, version: 0 }));
      const locked = (await q.query<ObjectRow>(this.sql.lockObject, [name])).rows[0];
      if (!locked) throw new SyncError('Internal', `${name} vanished while locked`);
      const current = toSafeInteger(locked.version, 'version');
      if (write.expectedVersion !== undefined && write.expectedVersion !== current) {
        throw new SyncError('PreconditionFailed', `version is ${current}, not ${write.expectedVersion}`);
      }
      await q.query(this.sql.putBlobData, [name, data]);
      const head = await q.query<{ version: bigint }>(this.sql.nextBlobVersion, [name, current + 1]);
      const version = toSafeInteger(head.rows[0]?.version, 'version');
      const updated = await q.query<ObjectRow>(this.sql.setBlobVersion, [
        name,
        data.byteLength,
        version,
        write.now,
      ]);
      return toObject(updated.rows[0] as ObjectRow);
    });
  }
}
