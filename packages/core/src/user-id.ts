import { digest } from 'lib0/hash/sha256';
import type { UserId } from './address.ts';

/** Separates this hash from every other use of SHA-256 over a public key (ASCII; core has no TextEncoder). */
const DOMAIN = Uint8Array.from('scopesync:user-id:v1\0', (c) => c.charCodeAt(0));

/**
 * The user id that belongs to a signing public key (32 bytes, Ed25519): `user_` + 16 hex
 * characters of SHA-256("scopesync:user-id:v1\0" ‖ key). The relay gives it to a user who
 * registers with a proven signing key, so a client that made its keys offline knows its user id
 * before it ever reached the relay (docs/offline.md). Ids are public, and a signing key belongs
 * to one user at most, so knowing the id grants nothing.
 */
export function userIdOfSigningKey(signPublicKey: Uint8Array): UserId {
  const input = new Uint8Array(DOMAIN.length + signPublicKey.length);
  input.set(DOMAIN, 0);
  input.set(signPublicKey, DOMAIN.length);
  let hex = '';
  for (const byte of digest(input).subarray(0, 8)) hex += byte.toString(16).padStart(2, '0');
  return `user_${hex}` as UserId;
}
