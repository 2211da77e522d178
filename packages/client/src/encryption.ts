import { type KeyValueStore, parseDocName, type ShareLevel, SyncError } from '@scopesync/core';
import type { Identity as CryptoIdentity, Device } from '@scopesync/crypto';
import { sameBytes } from './base64.ts';
import { KV_TABLES } from './client-store.ts';
import type { DocKeys } from './doc-keys.ts';
import { FollowSweep, type FollowSweepResult } from './follow-sweep.ts';
import type { RegistrationPlan } from './identity.ts';
import {
  cannotRotate,
  type IdentityRotationResult,
  type RotatingDoc,
  rotateIdentity,
} from './identity-rotation.ts';
import type { KeyApi, ProvenKeys, PublicKeys } from './key-api.ts';
import { loadCrypto, loadDocKeys } from './load-crypto.ts';
import { OwnDevices, type ThisDevice } from './own-devices.ts';
import { followRotation } from './rotation-follow.ts';
import type { SeedLocation, SeedStore } from './seed-store.ts';
import type { Trust } from './trust.ts';

/** What {@link Encryption} needs from its client. */
export interface EncryptionInit {
  readonly kv: KeyValueStore;
  readonly api: KeyApi;
  readonly seeds: SeedStore;
  /** Where this device's own key seed is kept (its entry in the device list). */
  readonly deviceSeeds: SeedStore;
  /** Import this phrase's root seed (a second device) instead of creating one. */
  readonly recoveryPhrase: string | undefined;
  /** The client's user id, once known. */
  readonly userId: () => string | undefined;
  /** True when the client authenticates with an API key (not an app token): a key is bound to its device. */
  readonly usesApiKey: () => boolean;
  /** Pinned keys of other users and tamper reports (shared encrypted blobs). */
  readonly trust: Trust;
}

/** The record saying which user the relay knows this device's keys for (table `keys`). */
interface Registration {
  readonly userId: string;
  readonly signPublicKey: Uint8Array;
}

const REGISTRATION = 'registration';

/**
 * What stays in memory after loading: the derived keys libsodium needs, never the root seed,
 * which is zeroed as soon as they are derived (the recovery phrase reads it again from storage).
 */
interface Loaded {
  readonly identity: CryptoIdentity;
  /** Where the seed came from: made now, kept from an earlier start, or the recovery phrase. */
  readonly origin: 'created' | 'stored' | 'phrase';
}

/**
 * End-to-end encryption of a client's USER_PRIVATE docs and encrypted blobs (DESIGN §6), on
 * by default: `client.encryption`.
 *
 * On first use it creates a 32-byte root seed (or imports the recovery phrase given to
 * `createClient`), derives the identity (signing key, box key, KEK) and registers the public
 * keys with the relay, with a proof of the signing key. The seed is kept at rest wrapped —
 * see {@link seedLocation}. Each encrypted doc gets random document keys, wrapped under the KEK
 * on the device and stored on the relay for the user's other devices; shared blobs' keys
 * travel as grants sealed to each member. Nothing leaves the device or reaches its store in
 * the clear.
 */
export class Encryption {
  readonly #init: EncryptionInit;
  #loaded: Promise<Loaded> | undefined;
  #registering: Promise<void> | undefined;
  readonly #docs = new Map<string, Promise<DocKeys>>();
  /** The identity in use once loaded: what every doc's keys sign, seal and wrap with (it changes on rotation). */
  #active: CryptoIdentity | undefined;
  #openDoc: ((docName: string) => RotatingDoc) | undefined;
  #rotating: Promise<IdentityRotationResult> | undefined;
  readonly #devices: OwnDevices;
  #sweep: FollowSweep | undefined;

  /** @internal Created by the client. */
  constructor(init: EncryptionInit) {
    this.#init = init;
    this.#devices = new OwnDevices({
      kv: init.kv,
      api: init.api,
      trust: init.trust,
      seeds: init.deviceSeeds,
    });
    // A member of a blob we own moved to a new identity by a signed rotation: re-share to it.
    init.trust.on('key-changed', (event) => {
      if (event.rotated) this.#followOwnedBlobs(event.userId).catch(() => undefined);
    });
  }

  /**
   * Follows `userId`'s verified identity rotation on every encrypted blob this device knows
   * that this user owns and lists them in (see `rotation-follow.ts`). A blob that fails (offline)
   * is reported (`follow-failed`) and followed later: on the member's envelope or head under the
   * new key, or by the next follow sweep.
   */
  async #followOwnedBlobs(userId: string): Promise<void> {
    for (const { key } of await this.#init.kv.list(KV_TABLES.keys, 'doc:blob/')) {
      try {
        await followRotation(await this.docKeys(key.slice('doc:'.length)), this.#init.trust, userId);
      } catch {}
    }
  }

  /**
   * Looks through the encrypted blobs this user owns on the relay (`GET /blobs/mine`, at most 100
   * per call, the next call going on from there) for members whose listed keys a signed identity
   * rotation retired, and follows each rotation this client verifies: the blob's keys are sealed
   * to the member's new keys and the next member list version names them. An unexplained key
   * change is never followed (`trust.accept`, then `blobs.share`). The client does this by itself
   * each time it comes online (skipped for a minute after a sweep that left nothing out);
   * call it to check now. Follows that fail are in `failed` and emitted as `follow-failed`.
   * Unavailable offline.
   */
  async followRotations(): Promise<FollowSweepResult> {
    await this.#rotating?.catch(() => undefined);
    return this.#followSweep().run();
  }

  /**
   * @internal The client came online: a follow sweep ({@link followRotations}), when this device
   * has registered keys for its user (nothing is loaded for a client that never set encryption
   * up) and is not rotating its own identity.
   */
  async onOnline(): Promise<void> {
    const userId = this.#init.userId();
    if (userId === undefined || this.#rotating) return;
    const known = await this.#init.kv.get<Registration>(KV_TABLES.keys, REGISTRATION);
    if (known?.userId !== userId) return;
    await this.#followSweep().onOnline();
  }

  #followSweep(): FollowSweep {
    const userId = this.#init.userId();
    if (userId === undefined) {
      throw new SyncError('Unauthorized', 'following rotations needs a registered user (an API key)');
    }
    if (this.#sweep?.userId !== userId) {
      this.#sweep = new FollowSweep({
        kv: this.#init.kv,
        api: this.#init.api,
        trust: this.#init.trust,
        userId,
        docKeys: (name) => this.docKeys(name),
      });
    }
    return this.#sweep;
  }

  /**
   * This device's id and its own public keys (random, made on first use, kept like the seed): its
   * entry in the user's signed device list. Partial (docs/encryption.md, "Per-device keys"):
   * envelopes and grants are still signed and sealed with the identity, not with these keys.
   */
  thisDevice(): Promise<ThisDevice> {
    return this.#devices.thisDevice();
  }

  /**
   * @internal This device's id in the device list (made on first use, kept): a new device's
   * API key is registered for it, so that a list without this device revokes that key.
   */
  deviceId(): Promise<string> {
    return this.#devices.deviceId();
  }

  /**
   * Adds this device to the user's signed device list (a new version signed by the identity key,
   * chained to the last one; nothing when listed already), and makes sure this client's API key
   * is bound to it, so that removing the device revokes the key (a key registered before keys
   * named their device is bound now). Resolves with the devices listed. Other clients read it
   * with `client.trust.devicesOf(userId)`.
   */
  async addThisDevice(): Promise<readonly Device[]> {
    const me = await this.thisDevice();
    await this.ensureRegistered();
    if (this.#init.usesApiKey()) await this.#init.api.bindKeyToDevice(me.deviceId);
    return this.#updateDevices((devices) =>
      devices.some((d) => d.deviceId === me.deviceId)
        ? undefined
        : [...devices, { ...me, addedAt: Date.now() }],
    );
  }

  /**
   * Removes a device from the user's signed device list (a lost one). NotFound when it is not
   * listed. The relay revokes the API keys registered for it in the same step (its sockets close,
   * its key is refused from then on), so a thief holding the device's files without the seed
   * (a passphrase-protected device) can sync nothing more. The document keys it could open are
   * not rotated by this (they derive from the shared seed): after losing a device whose seed
   * may be known (no passphrase, or a weak one), call {@link rotateIdentity}.
   */
  async removeDevice(deviceId: string): Promise<readonly Device[]> {
    return this.#updateDevices((devices) => {
      if (!devices.some((d) => d.deviceId === deviceId)) {
        throw new SyncError('NotFound', `device ${deviceId} is not in the device list`);
      }
      return devices.filter((d) => d.deviceId !== deviceId);
    });
  }

  async #updateDevices(change: (devices: Device[]) => Device[] | undefined): Promise<readonly Device[]> {
    await this.ensureRegistered();
    const userId = this.#init.userId();
    if (userId === undefined) throw new SyncError('Unauthorized', 'a device list needs a registered user');
    const { identity } = await this.#identity();
    return this.#devices.update(userId, identity, change);
  }

  /**
   * Where the root seed is kept on this device: `store` — in the client store, AES-GCM-wrapped
   * under the device key (in browsers a non-extractable WebCrypto key in IndexedDB); or
   * `seed-file` — the `seedFile` given to `createClient`, mode 0600.
   */
  get seedLocation(): SeedLocation {
    return this.#init.seeds.location;
  }

  /**
   * Loads this device's identity, creating the root seed on first use, and makes sure the
   * relay knows its public keys (when it is reachable). Conflict when this user's keys were
   * made on another device: create the client with that device's `recoveryPhrase`.
   */
  async ready(): Promise<void> {
    await this.#identity();
    try {
      await this.ensureRegistered();
    } catch (error) {
      if (!(error instanceof SyncError) || error.kind !== 'Unavailable') throw error;
      // Offline: everything works locally; the keys are registered before anything is sent.
    }
  }

  /**
   * The 24-word recovery phrase of this user's root seed: show it once, to be written down.
   * A device created with it (`createClient({ recoveryPhrase })`) is the same user, with the
   * same keys, and reads every private doc.
   */
  async exportRecoveryPhrase(): Promise<string> {
    await this.#identity();
    // Read from storage for this call only: the session keeps derived keys, not the seed.
    const seed = await this.#init.seeds.load();
    if (seed === undefined) throw new SyncError('NotFound', 'this device keeps no root seed');
    try {
      return await (await loadCrypto()).exportRecoveryPhrase(seed);
    } finally {
      seed.fill(0);
    }
  }

  /**
   * Moves this user to a new identity, after a device that held the root seed (or the recovery
   * phrase) was lost: a new seed, and its recovery phrase to write down; the relay hands the user
   * over to the new keys (the old key signs the statement, the new one countersigns) and revokes
   * every other API key of the user; then every document key this user holds is moved out of the
   * old seed's reach — private docs and the user's encrypted blobs get a new key and a snapshot
   * under it, blobs shared with the user are re-wrapped. From then on the old seed and phrase
   * open nothing written, link no device and register nothing. Other users who pinned the old key
   * see a `key-changed` event with `rotated: true` and go on. Needs the relay; resolves with the
   * new phrase and the documents it could not re-key (rotate those later with
   * `blobs.rotateKey`). Do not edit meanwhile: edits sealed under the old key are refused.
   */
  rotateIdentity(): Promise<IdentityRotationResult> {
    this.#rotating ??= this.#rotate().finally(() => {
      this.#rotating = undefined;
    });
    return this.#rotating;
  }

  async #rotate(): Promise<IdentityRotationResult> {
    const openDoc = this.#openDoc;
    if (!openDoc) throw cannotRotate('the built-in encryption of a client');
    // A follow sweep under way signs member lists too: it ends first (none starts meanwhile).
    await this.#sweep?.running?.catch(() => undefined);
    await this.ensureRegistered();
    const userId = this.#init.userId();
    if (userId === undefined) throw cannotRotate('a registered user (an API key)');
    const { identity } = await this.#identity();
    return rotateIdentity({
      kv: this.#init.kv,
      api: this.#init.api,
      seeds: this.#init.seeds,
      trust: this.#init.trust,
      userId,
      current: identity,
      docKeys: (name) => this.docKeys(name),
      openDoc,
      switchTo: async (next) => {
        this.#active = next;
        this.#loaded = Promise.resolve({ identity: next, origin: 'stored' });
        await this.registered(userId);
      },
    });
  }

  /** @internal How {@link rotateIdentity} opens a doc to sync it and replace it by a snapshot. */
  useDocs(open: (docName: string) => RotatingDoc): void {
    this.#openDoc = open;
  }

  /** This user's public keys (what the relay publishes for others to share with them). */
  async publicKeys(): Promise<PublicKeys> {
    const { identity } = await this.#identity();
    return { signPublicKey: identity.signPublicKey, boxPublicKey: identity.boxPublicKey };
  }

  /**
   * @internal How a device without an API key registers: a seed from a recovery phrase must
   * link to its user (strict: a typo is NotFound, never a new account); a seed kept from an
   * earlier start (or a seed file) links when its user exists; a seed made now registers.
   */
  async registrationPlan(): Promise<RegistrationPlan> {
    const { origin } = await this.#identity();
    if (origin === 'created') return { purpose: 'register', strict: true };
    return { purpose: 'link', strict: origin === 'phrase' };
  }

  /**
   * @internal The public keys with a proof for this relay: `register` a new user or `link` this
   * device to the user holding them (`POST /keys`), or `set-keys` of `userId` (PUT).
   */
  async provenKeys(purpose: ProvenKeys['purpose'], userId?: string): Promise<ProvenKeys> {
    const { identity } = await this.#identity();
    const { challenge, relayId } = await this.#init.api.challenge();
    return {
      keys: { signPublicKey: identity.signPublicKey, boxPublicKey: identity.boxPublicKey },
      purpose,
      challenge,
      // The identity is loaded, so libsodium is ready: crypto's one definition of the proof.
      proof: (await loadCrypto()).signKeyProof({ purpose, relayId, challenge, userId }, identity),
    };
  }

  /** @internal Remembers that the relay registered this device's keys for `userId`. */
  async registered(userId: string): Promise<void> {
    const { identity } = await this.#identity();
    const record: Registration = { userId, signPublicKey: identity.signPublicKey };
    await this.#init.kv.put(KV_TABLES.keys, REGISTRATION, record);
  }

  /**
   * @internal Makes sure the relay has this user's public keys (they verify every envelope).
   * Registers them when the user has none; Conflict when it has others.
   */
  ensureRegistered(): Promise<void> {
    this.#registering ??= this.#ensureRegistered().finally(() => {
      this.#registering = undefined;
    });
    return this.#registering;
  }

  async #ensureRegistered(): Promise<void> {
    const userId = this.#init.userId();
    if (userId === undefined) {
      throw new SyncError('Unauthorized', 'end-to-end encryption needs a registered user (an API key)');
    }
    const { identity } = await this.#identity();
    const known = await this.#init.kv.get<Registration>(KV_TABLES.keys, REGISTRATION);
    if (known?.userId === userId && sameBytes(known.signPublicKey, identity.signPublicKey)) return;
    const current = await this.#init.api.userKeys(userId);
    if (current === undefined) {
      await this.#init.api.setUserKeys(userId, await this.provenKeys('set-keys', userId));
    } else if (!sameBytes(current.signPublicKey, identity.signPublicKey)) {
      throw new SyncError(
        'Conflict',
        `${userId}'s encryption keys were created on another device: create this client with that ` +
          "device's recovery phrase (createClient({ recoveryPhrase }))",
      );
    }
    await this.registered(userId);
  }

  /** @internal The keys and cipher of an encrypted doc on this device (loaded once). */
  docKeys(docName: string): Promise<DocKeys> {
    const name = parseDocName(docName).name;
    let keys = this.#docs.get(name);
    if (!keys) {
      keys = this.#loadDocKeys(name);
      this.#docs.set(name, keys);
      // A doc whose keys could not be had now (offline, not granted yet) may get them later.
      keys.catch(() => this.#docs.delete(name));
    }
    return keys;
  }

  async #loadDocKeys(docName: string): Promise<DocKeys> {
    await this.#identity();
    const userId = this.#init.userId();
    if (userId === undefined) {
      throw new SyncError('Unauthorized', 'end-to-end encryption needs a registered user (an API key)');
    }
    const { DocKeys } = await loadDocKeys();
    const encryption = this;
    return DocKeys.load(
      {
        kv: this.#init.kv,
        api: this.#init.api,
        // Read at each use: after an identity rotation every doc signs and wraps with the new one.
        get identity() {
          return encryption.#activeIdentity();
        },
        userId,
        trust: this.#init.trust,
      },
      docName,
    );
  }

  /**
   * @internal Before a doc's envelopes go to the relay: the relay must know our keys (it
   * checks every signature) and, as the owner, the doc key must be stored there first so the
   * user's other devices can open what follows.
   */
  async prepareSend(docName: string): Promise<void> {
    await this.ensureRegistered();
    await (await this.docKeys(docName)).upload();
  }

  /** @internal The relay stored an envelope: a blob it created now exists, so its key can follow. */
  async afterAck(docName: string): Promise<void> {
    await (await this.docKeys(docName)).upload();
  }

  /** @internal The doc caught up with the relay: exchange signed heads with the other members (blobs). */
  async afterSynced(docName: string): Promise<void> {
    await (await this.docKeys(docName)).exchangeHeads();
  }

  /** @internal Seals an encrypted blob's keys to a new sharee (owner only). */
  async grant(docName: string, userId: string, level: ShareLevel): Promise<void> {
    await this.ensureRegistered();
    await (await this.docKeys(docName)).grant(userId, level);
  }

  #activeIdentity(): CryptoIdentity {
    if (!this.#active) throw new SyncError('Internal', 'the identity is not loaded');
    return this.#active;
  }

  #identity(): Promise<Loaded> {
    this.#loaded ??= this.#load();
    this.#loaded.catch(() => {
      this.#loaded = undefined;
    });
    return this.#loaded;
  }

  async #load(): Promise<Loaded> {
    const { deriveIdentity, generateRootSeed, importRecoveryPhrase } = await loadCrypto();
    const { seeds, recoveryPhrase, kv } = this.#init;
    const stored = await seeds.load();
    let seed: Uint8Array | undefined;
    try {
      let origin: Loaded['origin'];
      if (recoveryPhrase !== undefined) {
        origin = 'phrase';
        seed = await importRecoveryPhrase(recoveryPhrase);
        if (stored === undefined) {
          await seeds.save(seed, false);
        } else if (!sameBytes(stored, seed)) {
          // A seed this device made but never registered anywhere may give way to the phrase;
          // one the relay knows is an identity, and replacing it would orphan its data.
          if ((await kv.get(KV_TABLES.keys, REGISTRATION)) !== undefined) {
            throw new SyncError(
              'Conflict',
              'this device already holds another identity: use a fresh store to import this recovery phrase',
            );
          }
          await seeds.save(seed, true);
        }
      } else if (stored !== undefined) {
        seed = stored;
        origin = 'stored';
      } else {
        seed = generateRootSeed();
        origin = 'created';
        await seeds.save(seed, false);
      }
      const identity = deriveIdentity(seed);
      this.#active = identity;
      return { identity, origin };
    } finally {
      // Only the derived keys stay, whatever happened: a heap dump or a later bug that leaks
      // memory gets no seed.
      seed?.fill(0);
      stored?.fill(0);
    }
  }
}
