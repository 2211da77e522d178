import { type KeyValueStore, SyncError } from '@scopesync/core';
import type { Identity as CryptoIdentity, Device } from '@scopesync/crypto';
import { KV_TABLES } from './client-store.ts';
import type { KeyApi, PublicKeys } from './key-api.ts';
import { loadCrypto } from './load-crypto.ts';
import type { SeedStore } from './seed-store.ts';
import type { Trust } from './trust.ts';

// This device's own keys and the user's signed device list (docs/encryption.md, "Per-device
// keys", steps 1–2). The relay revokes the API keys bound to a device a new version drops;
// envelopes and grants are still signed and sealed with the identity (steps 3–4 are not built).

/** This device in the user's device list: its id and its own public keys. */
export interface ThisDevice extends PublicKeys {
  readonly deviceId: string;
}

/** What {@link OwnDevices} needs. */
export interface OwnDevicesContext {
  readonly kv: KeyValueStore;
  readonly api: KeyApi;
  readonly trust: Trust;
  /** Where this device's own key seed is kept (like the root seed, under the device key or passphrase). */
  readonly seeds: SeedStore;
}

const DEVICE_ID = 'device-id';

/** This device's own keys, and the user's device list as its identity signs it. */
export class OwnDevices {
  readonly #ctx: OwnDevicesContext;
  #device: Promise<ThisDevice> | undefined;
  #deviceId: Promise<string> | undefined;

  constructor(ctx: OwnDevicesContext) {
    this.#ctx = ctx;
  }

  /** This device's id and public keys, made at random on first use and kept. */
  thisDevice(): Promise<ThisDevice> {
    this.#device ??= this.#load();
    this.#device.catch(() => {
      this.#device = undefined;
    });
    return this.#device;
  }

  /**
   * This device's id in the device list, made at random on first use and kept: what its API key
   * is registered for, so that a list without it revokes the key. Needs no seed.
   */
  deviceId(): Promise<string> {
    this.#deviceId ??= this.#loadId();
    this.#deviceId.catch(() => {
      this.#deviceId = undefined;
    });
    return this.#deviceId;
  }

  async #loadId(): Promise<string> {
    const { kv } = this.#ctx;
    let deviceId = await kv.get<string>(KV_TABLES.keys, DEVICE_ID);
    if (deviceId === undefined) {
      deviceId = (await loadCrypto()).newDeviceId();
      await kv.put(KV_TABLES.keys, DEVICE_ID, deviceId);
    }
    return deviceId;
  }

  async #load(): Promise<ThisDevice> {
    const { seeds } = this.#ctx;
    const { deriveIdentity, generateRootSeed } = await loadCrypto();
    let seed = await seeds.load();
    if (seed === undefined) {
      seed = generateRootSeed();
      await seeds.save(seed, false);
    }
    const deviceId = await this.deviceId();
    try {
      const keys = deriveIdentity(seed);
      return { deviceId, signPublicKey: keys.signPublicKey, boxPublicKey: keys.boxPublicKey };
    } finally {
      seed.fill(0);
    }
  }

  /**
   * Signs the next version of the user's device list with `identity`, with the devices `change`
   * makes of the latest ones (read and verified first). A concurrent version from another device
   * is read and the change made again on top of it. Resolves with the devices listed now.
   */
  async update(
    userId: string,
    identity: CryptoIdentity,
    change: (devices: Device[]) => Device[] | undefined,
  ): Promise<readonly Device[]> {
    const { api, trust } = this.#ctx;
    const { signDeviceList } = await loadCrypto();
    for (let attempt = 0; ; attempt++) {
      const { lists, latest } = await trust.deviceChain(userId);
      const current = [...(latest?.devices ?? [])];
      const devices = change(current);
      if (devices === undefined) return current;
      const list = signDeviceList({ userId, previous: lists.at(-1), identity, devices });
      try {
        await api.putDeviceList(userId, list);
        await trust.deviceChain(userId);
        return devices;
      } catch (error) {
        if (
          attempt === 0 &&
          error instanceof SyncError &&
          (error.kind === 'Conflict' || error.kind === 'Forbidden')
        )
          continue;
        throw error;
      }
    }
  }
}
