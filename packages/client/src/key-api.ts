import { isShareLevel, type ShareLevel, SyncError } from '@scopesync/core';
import { fromBase64, toBase64Url } from './base64.ts';
import { type HttpApi, segment } from './http-api.ts';

/** A user's public keys as the relay publishes them (undefined: none registered). */
export interface PublicKeys {
  readonly signPublicKey: Uint8Array;
  readonly boxPublicKey: Uint8Array;
}

/**
 * One identity rotation as the relay publishes it: the retired signing key's signature handing
 * the user over to the next keys (verify with `verifyIdentityRotation` from @scopesync/crypto).
 */
export interface RotationStatement {
  readonly relayId: string;
  readonly challenge: string;
  readonly oldSignPk: Uint8Array;
  readonly newSignPk: Uint8Array;
  readonly newBoxPk: Uint8Array;
  readonly signature: Uint8Array;
  /** The new key's signature of the same statement (it accepted the hand-over). */
  readonly countersignature: Uint8Array;
}

/** A sealed document key and the signed grant for it, as stored next to a share. */
export interface StoredGrant {
  readonly sealedKey: Uint8Array;
  readonly grant: Uint8Array;
}

/** One member of a blob, from the share list. */
export interface ShareEntry {
  readonly userId: string;
  readonly level: ShareLevel;
}

/** A registration challenge and the relay id a proof of it must name. */
export interface KeyChallenge {
  readonly challenge: string;
  readonly relayId: string;
}

/** Public keys with the proof that their holder has the signing key (docs/encryption.md). */
export interface ProvenKeys {
  readonly keys: PublicKeys;
  /** `register` a new user, or `link` this device to the user holding the keys (POST /keys); `set-keys` (PUT). */
  readonly purpose: 'register' | 'link' | 'set-keys';
  readonly challenge: string;
  /** Ed25519 signature of `keyProofMessage` (from @scopesync/crypto) by the signing key. */
  readonly proof: Uint8Array;
}

/** The JSON fields that carry {@link ProvenKeys} in `POST /keys` and `PUT /users/<id>/keys`. */
export function provenKeysJson(proven: ProvenKeys): Record<string, string> {
  return {
    ...publicKeysJson(proven.keys),
    // PUT /users/<id>/keys has one purpose; POST /keys says which of its two it means.
    ...(proven.purpose === 'set-keys' ? {} : { purpose: proven.purpose }),
    challenge: proven.challenge,
    proof: toBase64Url(proven.proof),
  };
}

/**
 * The relay routes end-to-end encryption needs (docs/encryption.md): public keys, device
 * linking, the owner's wrapped document keys and sharees' sealed grants. Everything crossing
 * here is public or sealed; no key that opens anything.
 */
export class KeyApi {
  readonly #http: HttpApi;

  constructor(http: HttpApi) {
    this.#http = http;
  }

  /** A user's registered public keys; undefined when the user has none yet. NotFound for no such user. */
  async userKeys(userId: string): Promise<PublicKeys | undefined> {
    return (await this.userKeysAndRotations(userId)).keys;
  }

  /**
   * A user's registered public keys (undefined when none) and the identity rotations that led
   * to them, oldest first (unverified: the relay's word until checked). NotFound for no such user.
   */
  async userKeysAndRotations(
    userId: string,
  ): Promise<{ keys: PublicKeys | undefined; rotations: RotationStatement[] }> {
    const answer = await this.#http.json<{ sign_pk?: unknown; box_pk?: unknown; rotations?: unknown }>({
      method: 'GET',
      path: `/users/${segment(userId)}/keys`,
    });
    const rotations = (Array.isArray(answer.rotations) ? answer.rotations : []).flatMap((raw) => {
      const r = raw as Record<string, unknown>;
      const text = [
        r.relay_id,
        r.challenge,
        r.sign_pk,
        r.next_sign_pk,
        r.next_box_pk,
        r.signature,
        r.countersignature,
      ];
      if (!text.every((t) => typeof t === 'string')) return [];
      return [
        {
          relayId: r.relay_id as string,
          challenge: r.challenge as string,
          oldSignPk: fromBase64(r.sign_pk as string, 'sign_pk'),
          newSignPk: fromBase64(r.next_sign_pk as string, 'next_sign_pk'),
          newBoxPk: fromBase64(r.next_box_pk as string, 'next_box_pk'),
          signature: fromBase64(r.signature as string, 'signature'),
          countersignature: fromBase64(r.countersignature as string, 'countersignature'),
        },
      ];
    });
    if (typeof answer.sign_pk !== 'string' || typeof answer.box_pk !== 'string')
      return { keys: undefined, rotations };
    return {
      keys: {
        signPublicKey: fromBase64(answer.sign_pk, 'sign_pk'),
        boxPublicKey: fromBase64(answer.box_pk, 'box_pk'),
      },
      rotations,
    };
  }

  /**
   * Hands this user over to new keys (identity rotation): `proven` proves the new signing key,
   * `rotation` is the registered key's signature of the rotation statement over the same
   * challenge, countersigned by the new key. The relay revokes every other API key of the user.
   */
  async rotateUserKeys(
    userId: string,
    proven: ProvenKeys,
    rotation: { readonly signature: Uint8Array; readonly countersignature: Uint8Array },
  ): Promise<void> {
    await this.#http.send({
      method: 'PUT',
      path: `/users/${segment(userId)}/keys`,
      json: {
        ...provenKeysJson(proven),
        rotation: toBase64Url(rotation.signature),
        countersignature: toBase64Url(rotation.countersignature),
      },
    });
  }

  /** Every version of a user's signed device list, oldest first (empty when none). */
  async deviceLists(userId: string): Promise<Uint8Array[]> {
    const answer = await orNone(
      this.#http.json<{ lists?: unknown[] }>({ method: 'GET', path: `/users/${segment(userId)}/devices` }),
    );
    return (answer.lists ?? []).flatMap((l) => (typeof l === 'string' ? [fromBase64(l, 'device list')] : []));
  }

  /** Appends the next version of this user's device list (signed by the identity key). */
  async putDeviceList(userId: string, list: Uint8Array): Promise<void> {
    await this.#http.send({
      method: 'PUT',
      path: `/users/${segment(userId)}/devices`,
      json: { list: toBase64Url(list) },
    });
  }

  /**
   * Binds this client's API key to its device of the device list (`PUT /keys/device`), once: a
   * list without the device then revokes the key. Conflict when it is bound to another device
   * or the device was removed.
   */
  async bindKeyToDevice(deviceId: string): Promise<void> {
    await this.#http.send({ method: 'PUT', path: '/keys/device', json: { device_id: deviceId } });
  }

  /** The keys of this user's USER_PRIVATE docs on the relay (GET /userdata/<id>/USER_PRIVATE, every page). */
  async privateDocKeys(userId: string): Promise<string[]> {
    const keys: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string =
        cursor === null ? '?limit=500' : `?limit=500&cursor=${encodeURIComponent(cursor)}`;
      const answer: { keys?: unknown; cursor?: unknown } = await this.#http.json({
        method: 'GET',
        path: `/userdata/${segment(userId)}/USER_PRIVATE${query}`,
      });
      for (const key of Array.isArray(answer.keys) ? answer.keys : [])
        if (typeof key === 'string') keys.push(key);
      cursor = typeof answer.cursor === 'string' ? answer.cursor : null;
    } while (cursor !== null);
    return keys;
  }

  /** The ids of the end-to-end encrypted blobs this user owns (`GET /blobs/mine`, every page). */
  async ownedEncryptedBlobs(): Promise<string[]> {
    const ids: string[] = [];
    let after: string | null = null;
    do {
      const query: string = after === null ? '?limit=500' : `?limit=500&after=${encodeURIComponent(after)}`;
      const answer: { blobs?: unknown; next?: unknown } = await this.#http.json({
        method: 'GET',
        path: `/blobs/mine${query}`,
      });
      for (const blob of Array.isArray(answer.blobs)
        ? (answer.blobs as { blob_id?: unknown; encrypted?: unknown }[])
        : [])
        if (typeof blob.blob_id === 'string' && blob.encrypted === true) ids.push(blob.blob_id);
      after = typeof answer.next === 'string' ? answer.next : null;
    } while (after !== null);
    return ids;
  }

  /** A fresh single-use challenge to sign for a key registration, and the relay id to name. */
  async challenge(): Promise<KeyChallenge> {
    const answer = await this.#http.json<{ challenge?: unknown; relay_id?: unknown }>({
      method: 'POST',
      path: '/keys/challenge',
    });
    if (typeof answer.challenge !== 'string' || typeof answer.relay_id !== 'string') {
      throw new SyncError('InvalidMessage', 'POST /keys/challenge answered without a challenge and relay id');
    }
    return { challenge: answer.challenge, relayId: answer.relay_id };
  }

  /**
   * Registers this user's public keys (a user made without them). Conflict when other keys are
   * registered for the user, or these belong to another user.
   */
  async setUserKeys(userId: string, proven: ProvenKeys): Promise<void> {
    await this.#http.send({
      method: 'PUT',
      path: `/users/${segment(userId)}/keys`,
      json: provenKeysJson(proven),
    });
  }

  /** The owner's wrapped keys of a document (`wrapDocKey` bytes), oldest epoch first. */
  async docKeys(docName: string): Promise<Uint8Array[]> {
    const answer = await orNone(
      this.#http.json<{ keys?: { wrapped?: unknown }[] }>({
        method: 'GET',
        path: `/doc-keys/${segment(docName)}`,
      }),
    );
    return (answer.keys ?? []).flatMap((k) =>
      typeof k.wrapped === 'string' ? [fromBase64(k.wrapped, 'wrapped key')] : [],
    );
  }

  /** Stores one wrapped key of a document on the relay (owner only; the first write of a key id wins). */
  async putDocKey(docName: string, keyId: string, wrapped: Uint8Array): Promise<void> {
    await this.#http.send({
      method: 'PUT',
      path: `/doc-keys/${segment(docName)}/${segment(keyId)}`,
      bytes: wrapped,
    });
  }

  /** Stores a sharee's sealed key and grant for one epoch of an encrypted blob. */
  async putGrant(blobId: string, userId: string, epoch: number, grant: StoredGrant): Promise<void> {
    await this.#http.send({
      method: 'PUT',
      path: `/blob/${segment(blobId)}/keys/${segment(userId)}`,
      json: { epoch, sealed_key: toBase64Url(grant.sealedKey), grant: toBase64Url(grant.grant) },
    });
  }

  /** This user's grants for an encrypted blob, oldest epoch first (empty when none). */
  async myGrants(blobId: string): Promise<StoredGrant[]> {
    const answer = await orNone(
      this.#http.json<{ grants?: { sealed_key?: unknown; grant?: unknown }[] }>({
        method: 'GET',
        path: `/blob/${segment(blobId)}/keys/me`,
      }),
    );
    return (answer.grants ?? []).flatMap((g) =>
      typeof g.sealed_key === 'string' && typeof g.grant === 'string'
        ? [{ sealedKey: fromBase64(g.sealed_key, 'sealed key'), grant: fromBase64(g.grant, 'grant') }]
        : [],
    );
  }

  /** Every version of an encrypted blob's member list, oldest first (empty when it has none). */
  async memberLists(blobId: string): Promise<Uint8Array[]> {
    const answer = await orNone(
      this.#http.json<{ lists?: unknown[] }>({ method: 'GET', path: `/blob/${segment(blobId)}/members` }),
    );
    return (answer.lists ?? []).flatMap((l) => (typeof l === 'string' ? [fromBase64(l, 'member list')] : []));
  }

  /** Appends the next version of an encrypted blob's member list (owner only). */
  async putMemberList(blobId: string, list: Uint8Array): Promise<void> {
    await this.#http.send({
      method: 'PUT',
      path: `/blob/${segment(blobId)}/members`,
      json: { list: toBase64Url(list) },
    });
  }

  /** Every member's signed head of an encrypted blob. */
  async heads(blobId: string): Promise<{ readonly userId: string; readonly head: Uint8Array }[]> {
    const answer = await orNone(
      this.#http.json<{ heads?: { user_id?: unknown; head?: unknown }[] }>({
        method: 'GET',
        path: `/blob/${segment(blobId)}/heads`,
      }),
    );
    return (answer.heads ?? []).flatMap((h) =>
      typeof h.user_id === 'string' && typeof h.head === 'string'
        ? [{ userId: h.user_id, head: fromBase64(h.head, 'signed head') }]
        : [],
    );
  }

  /** Publishes this user's signed head of an encrypted blob. */
  async putHead(blobId: string, head: Uint8Array): Promise<void> {
    await this.#http.send({
      method: 'PUT',
      path: `/blob/${segment(blobId)}/heads/me`,
      json: { head: toBase64Url(head) },
    });
  }

  /** A blob's owner; undefined when the blob does not exist (yet). */
  async blobOwner(blobId: string): Promise<string | undefined> {
    try {
      const meta = await this.#http.json<{ owner?: unknown }>({
        method: 'GET',
        path: `/blob/${segment(blobId)}/meta`,
      });
      return typeof meta.owner === 'string' ? meta.owner : undefined;
    } catch (error) {
      if (error instanceof SyncError && error.kind === 'NotFound') return undefined;
      throw error;
    }
  }

  /** Everyone a blob is shared with, and at which level. */
  async shares(blobId: string): Promise<ShareEntry[]> {
    const answer = await this.#http.json<{ shares?: { user_id?: unknown; access_level?: unknown }[] }>({
      method: 'GET',
      path: `/share/${segment(blobId)}`,
    });
    return (answer.shares ?? []).flatMap((s) =>
      typeof s.user_id === 'string' && isShareLevel(s.access_level)
        ? [{ userId: s.user_id, level: s.access_level }]
        : [],
    );
  }
}

/** An answer, or an empty one when the relay has nothing for us (404). */
async function orNone<T extends object>(answer: Promise<T>): Promise<Partial<T>> {
  try {
    return await answer;
  } catch (error) {
    if (error instanceof SyncError && error.kind === 'NotFound') return {};
    throw error;
  }
}

function publicKeysJson(keys: PublicKeys): { sign_pk: string; box_pk: string } {
  return { sign_pk: toBase64Url(keys.signPublicKey), box_pk: toBase64Url(keys.boxPublicKey) };
}
