import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Level, SyncError, type UserId } from '@scopesync/core';
import type { RelayStore } from './relay-store.ts';

// API keys and user ids: how they are made, hashed and found in a request. Plain functions,
// shared by the HTTP routes, the WebSocket upgrade and the CLI's `admin create`.

/** An API key: 32 random bytes, base64url without padding (43 characters). */
const API_KEY = /^[A-Za-z0-9_-]{43}$/;
/** A public key as a client sends it: base64 or base64url, padding optional. */
const PUBLIC_KEY = /^[A-Za-z0-9+/_-]+={0,2}$/;
/** Longest device name accepted, in characters. */
export const MAX_DEVICE_NAME_LENGTH = 128;
/** Longest public key accepted, in characters (an X25519/Ed25519 key is 43–44). */
const MAX_PUBLIC_KEY_LENGTH = 256;

/** A fresh API key: 32 random bytes, base64url. */
export function generateApiKey(): string {
  return randomBytes(32).toString('base64url');
}

/** True when `key` has the shape of an API key (it may still be unknown or revoked). */
export function isApiKeyShaped(key: string): boolean {
  return API_KEY.test(key);
}

/** What the relay stores instead of a key: the lowercase hex SHA-256 of the key string. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
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
 * The API key a request carries: `x-api-key`, else `Authorization: Bearer <key>`, else the
 * `key` query parameter (browsers cannot set headers on a WebSocket). Null when there is none.
 */
export function apiKeyOf(request: IncomingMessage): string | null {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header;
  const auth = request.headers.authorization;
  if (typeof auth === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (match?.[1]) return match[1];
  }
  const url = request.url ?? '';
  const query = url.indexOf('?');
  if (query >= 0) {
    const key = new URLSearchParams(url.slice(query + 1)).get('key');
    if (key) return key;
  }
  return null;
}

/** What a device registers with. */
export interface DeviceRegistration {
  readonly deviceName: string;
  /** Default: User. The CLI registers admins; HTTP registration is always User. */
  readonly level?: Level;
  readonly signPk?: string | null | undefined;
  readonly boxPk?: string | null | undefined;
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

/** Checks an optional public key (base64/base64url, ≤ 256 characters). Throws BadRequest otherwise. */
export function parsePublicKey(value: unknown, what: string): string | null {
  if (value === undefined || value === null) return null;
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length > MAX_PUBLIC_KEY_LENGTH ||
    !PUBLIC_KEY.test(value)
  ) {
    throw new SyncError(
      'BadRequest',
      `${what} must be a base64 or base64url string of at most ${MAX_PUBLIC_KEY_LENGTH} characters`,
    );
  }
  return value;
}

/** Registers a device as a new user with a fresh API key. Stores only the key's hash. */
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
  const userId = newUserId(deviceName);
  await store.createUser(
    { userId, level, deviceName, signPk, boxPk, createdAt: now },
    { keyHash: hashApiKey(key), userId, createdAt: now, revokedAt: null },
  );
  return { key, userId };
}
