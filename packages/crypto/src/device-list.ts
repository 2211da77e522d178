import { isUserId, SyncError } from '@scopesync/core';
import { bytesEqual, checkLength, concatBytes, fromHex, readU32, toHex, utf8, writeU32 } from './bytes.ts';
import { sodium } from './sodium.ts';

// A user's signed device list (docs/encryption.md, "Per-device keys", step 2): which devices the
// user has, each with its own signing and box key, signed by the identity key (the one the seed
// derives) and chained by hash, so a relay can neither add a device nor bring a revoked one back
// by serving an older version.
//
// Layout, version 1 (integers big-endian):
//   off   size  field
//   0     1     format = 1
//   1     4     list version (1, 2, …)
//   5     32    hash of the previous version (zeros for version 1): deviceListHash()
//   37    21    user id
//   58    32    identity Ed25519 public key that signs this version
//   90    2     N devices
//   92    N×88  device id 16 ‖ sign pk 32 ‖ box pk 32 ‖ added at (ms, u64)
//   end-64 64   Ed25519 by the identity key over "scopesync:device-list:v1\0" ‖ bytes[0, end-64)

const FORMAT = 1;
const HASH_BYTES = 32;
const KEY_BYTES = 32;
const USER_ID_BYTES = 21;
const DEVICE_ID_BYTES = 16;
const SIGNATURE_BYTES = 64;
const DEVICE_BYTES = DEVICE_ID_BYTES + KEY_BYTES + KEY_BYTES + 8;
const OFFSET_PREVIOUS = 5;
const OFFSET_USER = OFFSET_PREVIOUS + HASH_BYTES;
const OFFSET_IDENTITY = OFFSET_USER + USER_ID_BYTES;
const OFFSET_COUNT = OFFSET_IDENTITY + KEY_BYTES;
const OFFSET_DEVICES = OFFSET_COUNT + 2;
const MAX_DEVICES = 1000;
const SIGN_DOMAIN = utf8('scopesync:device-list:v1\0');
const HASH_DOMAIN = utf8('scopesync:device-list-hash:v1\0');

/** One device of a user, with its own keys. */
export interface Device {
  /** 32 hex characters (16 random bytes). */
  readonly deviceId: string;
  readonly signPublicKey: Uint8Array;
  readonly boxPublicKey: Uint8Array;
  /** Epoch milliseconds. */
  readonly addedAt: number;
}

/** The content of one device list version. */
export interface DeviceList {
  readonly version: number;
  readonly previous: Uint8Array;
  readonly userId: string;
  /** The identity key that signed this version. */
  readonly identityKey: Uint8Array;
  readonly devices: readonly Device[];
  /** {@link deviceListHash} of these bytes: what the next version chains. */
  readonly hash: Uint8Array;
}

/** Input of {@link signDeviceList}. */
export interface SignDeviceListOptions {
  readonly userId: string;
  /** The version before this one (its bytes), or undefined for the first. */
  readonly previous?: Uint8Array | undefined;
  readonly identity: { readonly signPublicKey: Uint8Array; readonly signSecretKey: Uint8Array };
  readonly devices: readonly Device[];
}

function bad(message: string): SyncError {
  return new SyncError('BadRequest', `malformed device list: ${message}`);
}

/** BLAKE2b-256 of a device list version's bytes. Requires `ready()`. */
export function deviceListHash(bytes: Uint8Array): Uint8Array {
  return sodium().crypto_generichash(HASH_BYTES, concatBytes(HASH_DOMAIN, bytes), null);
}

/** A fresh random device id (32 hex characters). Requires `ready()`. */
export function newDeviceId(): string {
  return toHex(sodium().randombytes_buf(DEVICE_ID_BYTES));
}

/**
 * Signs the next version of a user's device list with the identity key (version 1 when
 * `previous` is undefined). BadRequest for malformed input or a device listed twice.
 */
export function signDeviceList(options: SignDeviceListOptions): Uint8Array {
  const { userId, identity, devices } = options;
  if (!isUserId(userId)) throw new SyncError('BadRequest', 'user id is not a user id');
  checkLength(identity.signPublicKey, KEY_BYTES, 'identity signing public key');
  checkLength(identity.signSecretKey, 64, 'identity signing secret key');
  if (devices.length > MAX_DEVICES) throw new SyncError('TooLarge', `at most ${MAX_DEVICES} devices`);
  const previous = options.previous === undefined ? undefined : readDeviceList(options.previous);
  const body = new Uint8Array(OFFSET_DEVICES + devices.length * DEVICE_BYTES);
  body[0] = FORMAT;
  writeU32(body, 1, previous === undefined ? 1 : previous.version + 1);
  if (previous) body.set(previous.hash, OFFSET_PREVIOUS);
  body.set(utf8(userId), OFFSET_USER);
  body.set(identity.signPublicKey, OFFSET_IDENTITY);
  const view = new DataView(body.buffer);
  view.setUint16(OFFSET_COUNT, devices.length, false);
  const seen = new Set<string>();
  let at = OFFSET_DEVICES;
  for (const device of devices) {
    if (seen.has(device.deviceId))
      throw new SyncError('BadRequest', `device ${device.deviceId} is listed twice`);
    seen.add(device.deviceId);
    body.set(checkLength(fromHex(device.deviceId, 'device id'), DEVICE_ID_BYTES, 'device id'), at);
    body.set(checkLength(device.signPublicKey, KEY_BYTES, 'device signing key'), at + DEVICE_ID_BYTES);
    body.set(checkLength(device.boxPublicKey, KEY_BYTES, 'device box key'), at + DEVICE_ID_BYTES + KEY_BYTES);
    if (!Number.isSafeInteger(device.addedAt) || device.addedAt < 0)
      throw new SyncError('BadRequest', 'addedAt must be epoch milliseconds');
    view.setBigUint64(at + DEVICE_ID_BYTES + 2 * KEY_BYTES, BigInt(device.addedAt), false);
    at += DEVICE_BYTES;
  }
  const signature = sodium().crypto_sign_detached(concatBytes(SIGN_DOMAIN, body), identity.signSecretKey);
  return concatBytes(body, signature);
}

/** Reads a device list version without verifying its signature. BadRequest when malformed. Requires `ready()`. */
export function readDeviceList(bytes: Uint8Array): DeviceList {
  if (!(bytes instanceof Uint8Array)) throw bad('not bytes');
  if (bytes.length < OFFSET_DEVICES + SIGNATURE_BYTES) throw bad('truncated');
  if (bytes[0] !== FORMAT) throw bad(`unsupported format ${bytes[0]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint16(OFFSET_COUNT, false);
  if (bytes.length !== OFFSET_DEVICES + count * DEVICE_BYTES + SIGNATURE_BYTES)
    throw bad('length does not match');
  const userId = String.fromCharCode(...bytes.subarray(OFFSET_USER, OFFSET_IDENTITY));
  if (!isUserId(userId)) throw bad('bad user id');
  const version = readU32(bytes, 1);
  if (version === 0) throw bad('version 0');
  const devices: Device[] = [];
  for (let i = 0, at = OFFSET_DEVICES; i < count; i++, at += DEVICE_BYTES) {
    const addedAt = view.getBigUint64(at + DEVICE_ID_BYTES + 2 * KEY_BYTES, false);
    if (addedAt > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('addedAt out of range');
    devices.push({
      deviceId: toHex(bytes.subarray(at, at + DEVICE_ID_BYTES)),
      signPublicKey: bytes.slice(at + DEVICE_ID_BYTES, at + DEVICE_ID_BYTES + KEY_BYTES),
      boxPublicKey: bytes.slice(at + DEVICE_ID_BYTES + KEY_BYTES, at + DEVICE_ID_BYTES + 2 * KEY_BYTES),
      addedAt: Number(addedAt),
    });
  }
  return {
    version,
    previous: bytes.slice(OFFSET_PREVIOUS, OFFSET_USER),
    userId,
    identityKey: bytes.slice(OFFSET_IDENTITY, OFFSET_COUNT),
    devices,
    hash: deviceListHash(bytes),
  };
}

/**
 * Verifies one device list version: well formed (BadRequest), for `userId` and signed by
 * `identityKey` (Forbidden otherwise). Requires `ready()`.
 */
export function verifyDeviceList(bytes: Uint8Array, identityKey: Uint8Array, userId: string): DeviceList {
  const list = readDeviceList(bytes);
  if (!bytesEqual(list.identityKey, identityKey)) {
    throw new SyncError('Forbidden', 'the device list is not signed by the identity key');
  }
  let valid = false;
  try {
    valid = sodium().crypto_sign_verify_detached(
      bytes.subarray(bytes.length - SIGNATURE_BYTES),
      concatBytes(SIGN_DOMAIN, bytes.subarray(0, bytes.length - SIGNATURE_BYTES)),
      identityKey,
    );
  } catch {
    valid = false;
  }
  if (!valid) throw new SyncError('Forbidden', 'device list signature does not verify: altered or forged');
  if (list.userId !== userId) throw new SyncError('Forbidden', 'the device list is for another user');
  return list;
}

/** Checks that `next` follows `previous` (or starts a chain): version + 1, chaining its hash. Forbidden otherwise. */
export function checkDeviceListStep(previous: DeviceList | undefined, next: DeviceList): void {
  const expected = previous === undefined ? 1 : previous.version + 1;
  const hash = previous === undefined ? new Uint8Array(HASH_BYTES) : previous.hash;
  if (next.version !== expected || !bytesEqual(next.previous, hash)) {
    throw new SyncError(
      'Forbidden',
      `device list version ${next.version} does not follow version ${expected - 1}: the history was altered`,
    );
  }
}

/**
 * Verifies a whole device list chain, oldest first, for `userId`: each version signed by a key of
 * the identity's history (oldest first, the current one last; never an earlier key after a later
 * one signed) and chaining the one before. Returns them decoded.
 */
export function verifyDeviceListChain(
  chain: readonly Uint8Array[],
  identityKeys: Uint8Array | readonly Uint8Array[],
  userId: string,
): DeviceList[] {
  const keys = identityKeys instanceof Uint8Array ? [identityKeys] : identityKeys;
  const out: DeviceList[] = [];
  let at = 0;
  for (const bytes of chain) {
    const signer = readDeviceList(bytes).identityKey;
    let index = -1;
    for (let i = at; i < keys.length; i++) {
      if (bytesEqual(keys[i] as Uint8Array, signer)) {
        index = i;
        break;
      }
    }
    if (index < 0) throw new SyncError('Forbidden', 'the device list is not signed by the identity key');
    const list = verifyDeviceList(bytes, keys[index] as Uint8Array, userId);
    checkDeviceListStep(out.at(-1), list);
    at = index;
    out.push(list);
  }
  return out;
}
