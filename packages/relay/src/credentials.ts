import * as nodeCrypto from 'node:crypto';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Level, type RelayStore, SyncError, type UserId, userIdOfSigningKey } from '@scopesync/core';
import { credentialOfProtocols } from './auth/subprotocol.ts';
import { queryParam } from './http/request.ts';

// API keys and user ids: how they are made, hashed and found in a request. Plain functions,
// shared by the HTTP routes, the WebSocket upgrade and the CLI's `admin create`.

/** An API key: 32 random bytes, base64url without padding (43 characters). */
const API_KEY = /^[A-Za-z0-9_-]{43}$/;
/** Binary fields as a client sends them: base64 or base64url, padding optional. */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
/** A device id of the user's device list: 16 random bytes as lowercase hex (crypto's `newDeviceId`). */
const DEVICE_ID = /^[0-9a-f]{32}$/;
/** Longest device name accepted, in characters. */
export const MAX_DEVICE_NAME_LENGTH = 128;
/** Bytes in an Ed25519 or X25519 public key. */
export const PUBLIC_KEY_BYTES = 32;

/** A fresh API key: 32 random bytes, base64url. */
export function generateApiKey(): string {
  return randomBytes(32).toString('base64url');
}

/** True when `key` has the shape of an API key (it may still be unknown or revoked). */
export function isApiKeyShaped(key: string): boolean {
  return API_KEY.test(key);
}

/** `crypto.hash` where this Node has it (20.12+), else undefined (a named import would not link there). */
const oneShotHash = nodeCrypto.hash as typeof nodeCrypto.hash | undefined;

/** What the relay stores instead of a key: the lowercase hex SHA-256 of the key string. */
export function hashApiKey(key: string): string {
  // Every socket and request with a key hashes it once: the one-shot `hash` skips the Hash
  // object `createHash` builds (about 3× faster). It is in Node 20.12+; `engines` allows any 20.
  return oneShotHash
    ? oneShotHash('sha256', key, 'hex')
    : createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * A new user id: `user_` + 16 hex characters of SHA-256(device name + 16 fresh random
 * bytes). The randomness means registering the same device name twice gives two users, so
 * nobody can take over an account by guessing a device name.
 */
export function newUserId(deviceName: string): UserId {
  const digest = createHash('sha256').update(deviceName, 'utf8').update(randomBytes(16)).digest('hex');
  return `user_${digest.slice(0, 16)}` as UserId;
}

/**
 * The credential (an API key or an app token) a request carries: `x-api-key`, else
 * `Authorization: Bearer <credential>`, else the WebSocket subprotocol `bearer.<credential>`
 * (browsers cannot set headers on a WebSocket), else the `key` query parameter (stock
 * y-websocket clients). Null when there is none.
 */
export function apiKeyOf(request: IncomingMessage): string | null {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header;
  const auth = request.headers.authorization;
  if (typeof auth === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (match?.[1]) return match[1];
  }
  const offered = credentialOfProtocols(request.headers['sec-websocket-protocol']);
  if (offered !== null) return offered;
  // `|| null`: an empty `?key=` is no credential.
  return queryParam(request.url ?? '', 'key') || null;
}

/** What a device registers with. */
export interface DeviceRegistration {
  readonly deviceName: string;
  /** Default: User. The CLI registers admins; HTTP registration is always User. */
  readonly level?: Level;
  /** Ed25519 public key, base64 or base64url (32 bytes); stored as base64url. */
  readonly signPk?: string | null | undefined;
  /** X25519 public key, base64 or base64url (32 bytes); stored as base64url. */
  readonly boxPk?: string | null | undefined;
  /** The device of the user's device list the first key is for (see `parseDeviceId`). */
  readonly deviceId?: string | undefined;
}

/** The once-only answer of a registration: the key is never shown again. */
export interface Registration {
  readonly key: string;
  readonly userId: UserId;
}

/** Checks a device name: 1–128 characters, no control characters. Throws BadRequest otherwise. */
export function parseDeviceName(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '')
    throw new SyncError('BadRequest', 'device_name must be a non-empty string');
  if (value.length > MAX_DEVICE_NAME_LENGTH) {
    throw new SyncError('BadRequest', `device_name is longer than ${MAX_DEVICE_NAME_LENGTH} characters`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point.
  if (/[\u0000-\u001f\u007f]/.test(value))
    throw new SyncError('BadRequest', 'device_name must not contain control characters');
  return value;
}

/**
 * Checks an optional device id (`device_id` of POST /keys): 32 lowercase hex characters, or
 * undefined when absent (null or undefined). Throws BadRequest otherwise.
 */
export function parseDeviceId(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !DEVICE_ID.test(value)) {
    throw new SyncError('BadRequest', 'device_id must be 32 lowercase hex characters (a device list entry)');
  }
  return value;
}

/**
 * Decodes a binary field sent as base64 or base64url (padding optional). BadRequest when it is
 * not a string in that alphabet, or not between `minBytes` and `maxBytes` long once decoded.
 */
export function parseBase64(value: unknown, what: string, minBytes: number, maxBytes: number): Uint8Array {
  // 4 characters carry 3 bytes: anything longer than this cannot decode to maxBytes.
  const maxChars = Math.ceil(maxBytes / 3) * 4;
  if (typeof value !== 'string' || value.length > maxChars || !BASE64.test(value)) {
    throw new SyncError('BadRequest', `${what} must be base64 or base64url`);
  }
  const unpadded = value.replace(/=+$/, '');
  // A lone trailing character holds 6 bits: no byte ends there, so it is a truncated value.
  if (unpadded.length % 4 === 1) throw new SyncError('BadRequest', `${what} is truncated base64`);
  // Node's base64 decoder reads both alphabets; it skips (never rejects) what it does not know,
  // which BASE64 above has already ruled out.
  const bytes = new Uint8Array(Buffer.from(unpadded, 'base64'));
  if (bytes.length < minBytes || bytes.length > maxBytes) {
    const size = minBytes === maxBytes ? `${minBytes} bytes` : `${minBytes}–${maxBytes} bytes`;
    throw new SyncError('BadRequest', `${what} must decode to ${size}, not ${bytes.length}`);
  }
  return bytes;
}

/** Bytes as base64url without padding: how the relay stores and answers keys, proofs and grants. */
export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/**
 * Checks an optional public key: a 32-byte Ed25519/X25519 key in base64 or base64url. Returns
 * it as base64url without padding (the one stored form, so equal keys compare equal), or null
 * when absent. Throws BadRequest otherwise.
 */
export function parsePublicKey(value: unknown, what: string): string | null {
  if (value === undefined || value === null) return null;
  return toBase64Url(parseBase64(value, what, PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES));
}

/**
 * The 32 bytes of a stored public key, or null when it is not one (a relay before schema 2
 * stored whatever base64 a client sent: such a key matches no signature).
 */
export function publicKeyBytes(stored: string | null): Uint8Array | null {
  if (stored === null) return null;
  try {
    return parseBase64(stored, 'stored key', PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES);
  } catch {
    return null;
  }
}

/**
 * Issues a new API key for an existing user (a device of theirs); stores only its hash. NotFound
 * when there is no such user. Trusted callers only: the runtime, an admin route, the CLI.
 */
export async function issueApiKey(
  store: RelayStore,
  userId: string,
  now: number = Date.now(),
): Promise<Registration> {
  const user = await store.getUser(userId);
  if (!user) throw new SyncError('NotFound', `no user ${userId}`);
  const key = generateApiKey();
  await store.addKey({ keyHash: hashApiKey(key), userId: user.userId, createdAt: now, revokedAt: null });
  return { key, userId: user.userId as UserId };
}

/**
 * Registers a device as a new user with a fresh API key. Stores only the key's hash. The user
 * id is the signing key's (`userIdOfSigningKey`) when one is given, else a random one. Trusted
 * callers only (the runtime, the CLI): it takes public keys without a proof of possession, which
 * the HTTP route demands (see `key-proof.ts`). Conflict when another user holds `signPk`.
 */
export async function registerDevice(
  store: RelayStore,
  registration: DeviceRegistration,
  now: number = Date.now(),
): Promise<Registration> {
  const deviceName = parseDeviceName(registration.deviceName);
  const signPk = parsePublicKey(registration.signPk, 'sign_pk');
  const boxPk = parsePublicKey(registration.boxPk, 'box_pk');
  const level = registration.level ?? Level.User;
  const key = generateApiKey();
  // A proven signing key names its user: a client that made its keys offline knows its id
  // before it ever reached the relay (core's userIdOfSigningKey, docs/offline.md).
  const signBytes = publicKeyBytes(signPk);
  const userId = signBytes ? userIdOfSigningKey(signBytes) : newUserId(deviceName);
  await store.createUser(
    { userId, level, deviceName, signPk, boxPk, createdAt: now },
    {
      keyHash: hashApiKey(key),
      userId,
      createdAt: now,
      revokedAt: null,
      ...(registration.deviceId === undefined ? {} : { deviceId: parseDeviceId(registration.deviceId) }),
    },
  );
  return { key, userId };
}
