import { blobAddress, isShareLevel, type ShareLevel, SyncError } from '@scopesync/core';
import { randomBlobId } from './blob-id.ts';
import { takenBlobIdError } from './denied-doc.ts';
import type { DocCipher } from './doc-cipher.ts';
import type { DocHandle } from './doc-handle.ts';
import { hasDocKeys } from './doc-key-record.ts';
import type { Encryption } from './encryption.ts';
import { type HttpApi, segment } from './http-api.ts';
import type { SyncClient } from './sync-client.ts';

/** A raw blob's metadata, as the relay reports it. */
export interface BlobMeta {
  readonly blobId: string;
  readonly owner: string;
  /** Increases with every write; pass it as `ifVersion` for a conditional write. */
  readonly version: number;
  readonly size: number;
  readonly createdAt: number | undefined;
  readonly updatedAt: number | undefined;
}

/** A raw blob's content with the version it was read at. */
export interface BlobContent {
  readonly bytes: Uint8Array;
  readonly version: number | undefined;
}

/** One share of a blob. */
export interface BlobShare {
  readonly userId: string;
  readonly accessLevel: ShareLevel;
  readonly grantedBy: string | undefined;
  readonly grantedAt: number | undefined;
}

/** A blob someone else shared with this user (see {@link Blobs.sharedWithMe}). */
export interface IncomingBlobShare {
  readonly blobId: string;
  /** The blob's owner: who shared it. */
  readonly owner: string;
  readonly accessLevel: ShareLevel;
  readonly grantedBy: string | undefined;
  readonly grantedAt: number | undefined;
}

/** A blob made by {@link Blobs.create}: its new id and its open handle (release it when done). */
export interface CreatedBlob {
  readonly id: string;
  readonly handle: DocHandle;
}

/** Options of {@link Blobs.create}. */
export interface BlobCreateOptions {
  /** Sync it end-to-end encrypted (fixed at creation). */
  readonly encrypted?: boolean | undefined;
}

/** Options of {@link Blobs.put}. */
export interface BlobPutOptions {
  /**
   * Write only if the blob is at this version (0: only if it does not exist yet); otherwise
   * the write fails with PreconditionFailed (or Conflict) and changes nothing.
   */
  readonly ifVersion?: number | undefined;
  /** Seal the bytes with the client's DocCipher before upload (read back with `get(id, { encrypted: true })`). */
  readonly encrypted?: boolean | undefined;
}

/** What {@link Blobs} needs from its client. */
export interface BlobsContext {
  readonly client: SyncClient;
  readonly http: HttpApi;
  /** The cipher of an encrypted blob; rejects BadRequest when the client has none. */
  readonly cipher: (docName: string) => Promise<DocCipher>;
  /** The built-in encryption, when encrypted docs use it (no `cipherFor`). */
  readonly builtIn: () => Encryption | undefined;
}

/** Options of {@link Blobs.share} and {@link Blobs.revoke}. */
export interface BlobShareOptions {
  /**
   * Whether the blob is end-to-end encrypted. Default: encrypted when this device holds keys
   * for it (it opened it with `{ encrypted: true }` before).
   */
  readonly encrypted?: boolean | undefined;
}

/**
 * Blobs (seed 001): collaborative blobs are docs `blob/<id>` synced like any doc; raw blobs
 * are bytes over HTTP with versions for optimistic concurrency; shares grant other users
 * read_only or read_write access.
 */
export class Blobs {
  readonly #ctx: BlobsContext;

  constructor(ctx: BlobsContext) {
    this.#ctx = ctx;
  }

  /**
   * Creates a collaborative blob under a fresh random id ({@link newId}) and opens it: edit
   * `handle.doc`, share `id`. It works offline — the blob exists on the relay once the first
   * edit syncs. Prefer this to readable ids: an id is global, and one somebody else created
   * first is theirs (the handle then emits 'denied').
   */
  create(options: BlobCreateOptions = {}): CreatedBlob {
    const id = randomBlobId();
    return { id, handle: this.open(id, options) };
  }

  /** A fresh crypto-random blob id (22 letters and digits), e.g. for a raw blob's {@link put} with `ifVersion: 0`. */
  newId(): string {
    return randomBlobId();
  }

  /**
   * The blobs other users shared with this user ("shared with me"), by blob id, with owner and
   * level (GET /shares/incoming). Needs the relay: rejects with Unavailable offline.
   */
  async sharedWithMe(): Promise<IncomingBlobShare[]> {
    const answer = await this.#ctx.http.json<{ shares?: unknown }>({
      method: 'GET',
      path: '/shares/incoming',
    });
    const shares = Array.isArray(answer.shares) ? (answer.shares as RawIncomingShare[]) : [];
    return shares
      .filter((raw) => typeof raw.blob_id === 'string' && typeof raw.owner === 'string')
      .map((raw) => ({
        blobId: raw.blob_id as string,
        owner: raw.owner as string,
        accessLevel: isShareLevel(raw.access_level) ? raw.access_level : 'read_only',
        grantedBy: raw.granted_by,
        grantedAt: raw.granted_at,
      }));
  }

  /** Opens the collaborative blob `blob/<id>` as a doc (see {@link SyncClient.doc}). */
  open(id: string, options: { readonly encrypted?: boolean | undefined } = {}): DocHandle {
    return this.#ctx.client.doc(blobAddress(id), { encrypted: options.encrypted });
  }

  /**
   * Writes a raw blob (creating it if needed). Resolves with its new metadata. Conflict when the
   * id belongs to someone else (nothing is written; pick another id, e.g. {@link newId}).
   */
  async put(id: string, bytes: Uint8Array, options: BlobPutOptions = {}): Promise<BlobMeta> {
    const address = blobAddress(id);
    const headers: Record<string, string> = {};
    if (options.ifVersion !== undefined) {
      if (!Number.isInteger(options.ifVersion) || options.ifVersion < 0) {
        throw new SyncError('BadRequest', 'ifVersion must be a non-negative integer');
      }
      headers['if-match'] = String(options.ifVersion);
    }
    const body = options.encrypted ? await this.#sealRaw(address.name, bytes, options.ifVersion) : bytes;
    // Created end-to-end encrypted: the relay then refuses it as a plaintext doc.
    if (options.encrypted) headers['x-scopesync-encrypted'] = '1';
    let meta: RawBlobMeta;
    try {
      meta = await this.#ctx.http.json<RawBlobMeta>({
        method: 'PUT',
        path: `/blob/${segment(id)}`,
        bytes: body,
        headers,
      });
    } catch (error) {
      // A PUT that may create answers 404 only for an id that exists and is not ours to see
      // (docs/security.md, "Existence"): the id is taken.
      const creating = options.ifVersion === undefined || options.ifVersion === 0;
      if (creating && error instanceof SyncError && error.kind === 'NotFound') throw takenBlobIdError(id);
      throw error;
    }
    // The blob exists now: its key can be stored for the owner's other devices.
    const encryption = options.encrypted ? this.#ctx.builtIn() : undefined;
    if (encryption) await encryption.prepareSend(address.name);
    return toMeta(meta, id);
  }

  /** Reads a raw blob. NotFound when it does not exist or is not shared with this user. */
  async get(id: string, options: { readonly encrypted?: boolean | undefined } = {}): Promise<BlobContent> {
    const address = blobAddress(id);
    const response = await this.#ctx.http.send({ method: 'GET', path: `/blob/${segment(id)}` });
    const data = new Uint8Array(await response.arrayBuffer());
    let bytes: Uint8Array = data;
    const version = parseEtag(response.headers.get('etag'));
    if (options.encrypted) {
      const encryption = this.#ctx.builtIn();
      if (encryption) {
        // From the relay: checked as strictly as a synced envelope (a writer the signed member
        // list names, a listed key, the epoch floor), as raw bytes, at the version served.
        bytes = await (await encryption.docKeys(address.name)).openRaw(data, version);
      } else {
        const cipher = await this.#ctx.cipher(address.name);
        bytes = await (cipher.openFromRelay ? cipher.openFromRelay(data) : cipher.open(data));
      }
    }
    return { bytes, version };
  }

  /** A raw blob's metadata. */
  async meta(id: string): Promise<BlobMeta> {
    blobAddress(id);
    return toMeta(
      await this.#ctx.http.json<RawBlobMeta>({ method: 'GET', path: `/blob/${segment(id)}/meta` }),
      id,
    );
  }

  /** Deletes a blob (owner only). */
  async delete(id: string): Promise<void> {
    blobAddress(id);
    await this.#ctx.http.send({ method: 'DELETE', path: `/blob/${segment(id)}` });
  }

  /**
   * Shares a blob with another user. The owner shares; sharing with yourself or an invalid
   * level is BadRequest, an unknown user NotFound. For an end-to-end encrypted blob the
   * document key is then sealed to the sharee's public key with a signed grant stored on the
   * relay (Conflict when the sharee has registered no keys yet); a read_only sharee can read
   * but the relay refuses its envelopes.
   */
  async share(
    id: string,
    userId: string,
    level: ShareLevel,
    options: BlobShareOptions = {},
  ): Promise<BlobShare> {
    const address = blobAddress(id);
    if (!isShareLevel(level)) throw new SyncError('BadRequest', 'level must be read_only or read_write');
    const answer = await this.#ctx.http.json<RawShare>({
      method: 'POST',
      path: `/share/${segment(id)}`,
      json: { user_id: userId, access_level: level },
    });
    const encryption = await this.#encryptionFor(id, options);
    if (encryption) await encryption.grant(address.name, userId, level);
    return toShare(answer);
  }

  /**
   * Revokes a share; the sharee's live subscription closes at once. NotFound if there was
   * none. For an end-to-end encrypted blob the key then rotates to a new epoch: the new key is
   * sealed to the remaining members and a snapshot under it replaces the relay's log, so the
   * revoked user cannot read anything written afterwards (the relay also refuses envelopes
   * under the old key from then on). Resolves once that is done.
   */
  async revoke(id: string, userId: string, options: BlobShareOptions = {}): Promise<void> {
    blobAddress(id);
    await this.#ctx.http.send({ method: 'DELETE', path: `/share/${segment(id)}/${segment(userId)}` });
    if (await this.#encryptionFor(id, options)) await this.#rotate(id, userId);
  }

  /**
   * Rotates an end-to-end encrypted blob's key (owner only): a new epoch sealed to the current
   * members, a snapshot under it replacing the relay's log, and the old epoch refused from then
   * on. {@link revoke} does this itself; call it again if a revocation's rotation failed
   * (offline), or to rotate on a schedule.
   */
  async rotateKey(id: string): Promise<void> {
    await this.#rotate(id, undefined);
  }

  /** Rotates the key; `remove` leaves the signed member list (a revoked member) first. */
  async #rotate(id: string, remove: string | undefined): Promise<void> {
    const address = blobAddress(id);
    const encryption = this.#ctx.builtIn();
    if (!encryption)
      throw new SyncError('BadRequest', 'key rotation needs the built-in encryption (no cipherFor)');
    const handle = this.#ctx.client.doc(address, { encrypted: true });
    try {
      // Everything written so far must be in the snapshot: catch up and send our edits first.
      await handle.whenSynced;
      await handle.whenAcked();
      const keys = await encryption.docKeys(address.name);
      await keys.rotate({ remove });
      await handle.replaceBySnapshot();
      await keys.requireCurrentEpoch();
    } finally {
      await handle.release();
    }
  }

  /** Raw bytes sealed as kind `raw` (the built-in cipher) naming the version this write makes when known. */
  async #sealRaw(docName: string, bytes: Uint8Array, ifVersion: number | undefined): Promise<Uint8Array> {
    const encryption = this.#ctx.builtIn();
    if (!encryption) return (await this.#ctx.cipher(docName)).seal(bytes);
    return (await encryption.docKeys(docName)).sealRaw(
      bytes,
      ifVersion === undefined || ifVersion === 0 ? 0 : ifVersion + 1,
    );
  }

  /** The built-in encryption when blob `id` is end-to-end encrypted (and the client uses it). */
  async #encryptionFor(id: string, options: BlobShareOptions): Promise<Encryption | undefined> {
    const encryption = this.#ctx.builtIn();
    if (!encryption || options.encrypted === false) return undefined;
    if (options.encrypted === true) return encryption;
    if (await hasDocKeys(this.#ctx.client.store.kv, blobAddress(id).name)) return encryption;
    // A device that never opened the blob: the relay knows its mode.
    const meta = await this.#ctx.http.json<{ encrypted?: unknown }>({
      method: 'GET',
      path: `/blob/${segment(id)}/meta`,
    });
    return meta.encrypted === true ? encryption : undefined;
  }

  /** Everyone a blob is shared with. */
  async listShares(id: string): Promise<BlobShare[]> {
    blobAddress(id);
    const answer = await this.#ctx.http.json<{ shares?: RawShare[] }>({
      method: 'GET',
      path: `/share/${segment(id)}`,
    });
    return (answer.shares ?? []).map(toShare);
  }
}

interface RawBlobMeta {
  readonly blob_id?: string;
  readonly owner?: string;
  readonly version?: number;
  readonly size?: number;
  readonly created_at?: number;
  readonly updated_at?: number;
}

interface RawIncomingShare extends RawShare {
  readonly blob_id?: unknown;
  readonly owner?: unknown;
}

interface RawShare {
  readonly user_id?: string;
  readonly access_level?: string;
  readonly granted_by?: string;
  readonly granted_at?: number;
}

function toMeta(raw: RawBlobMeta, id: string): BlobMeta {
  return {
    blobId: raw.blob_id ?? id,
    owner: raw.owner ?? '',
    version: typeof raw.version === 'number' ? raw.version : 0,
    size: typeof raw.size === 'number' ? raw.size : 0,
    createdAt: raw.created_at,
    updatedAt: raw.updated_at,
  };
}

function toShare(raw: RawShare): BlobShare {
  return {
    userId: raw.user_id ?? '',
    accessLevel: isShareLevel(raw.access_level) ? raw.access_level : 'read_only',
    grantedBy: raw.granted_by,
    grantedAt: raw.granted_at,
  };
}

function parseEtag(etag: string | null): number | undefined {
  if (etag === null) return undefined;
  const match = /^(?:W\/)?"?(\d+)"?$/.exec(etag.trim());
  return match ? Number(match[1]) : undefined;
}
