import { createPrivateKey, sign } from 'node:crypto';
import { deriveIdentity, generateRootSeed, type Identity } from '@scopesync/crypto';
import { expect } from 'vitest';
import type { TestRelay } from './start-test-relay.ts';

// Registering devices with public keys the way a client does (docs/encryption.md), for the
// tests of the relay's key routes. The proof is signed with node:crypto rather than the
// client's code, so a mistake there cannot cancel out.

/** Bytes as base64url without padding, as the key routes carry them. */
export const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/** What a proof states besides the keys (docs/encryption.md). */
export interface ProofStatement {
  /** The relay id `POST /keys/challenge` published. */
  readonly relayId: string;
  /** Default `register`. */
  readonly purpose?: 'register' | 'link' | 'set-keys';
  /** The user a `set-keys` proof is for. */
  readonly userId?: string;
}

/**
 * The registration proof: Ed25519 by `identity`'s sign key over domain ‖ purpose ‖ 0 ‖ relay id
 * ‖ 0 ‖ user id ‖ 0 ‖ challenge ‖ 0 ‖ `keys`' public keys.
 */
export function proofOf(
  identity: Identity,
  challenge: string,
  statement: ProofStatement,
  keys: Identity = identity,
): string {
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519, identity.signSecretKey.subarray(0, 32)]),
    format: 'der',
    type: 'pkcs8',
  });
  const text = [statement.purpose ?? 'register', statement.relayId, statement.userId ?? '', challenge];
  const message = Buffer.concat([
    Buffer.from('scopesync:register-keys:v2\0', 'utf8'),
    Buffer.from(`${text.join('\0')}\0`, 'ascii'),
    keys.signPublicKey,
    keys.boxPublicKey,
  ]);
  return sign(null, message, key).toString('base64url');
}

/** A device registered with public keys. */
export interface Device {
  readonly key: string;
  readonly userId: string;
  readonly identity: Identity;
}

/** Key registration against the relay `api` answers. */
export function keyRegistration(api: TestRelay['api']) {
  let relayId = '';

  /** A fresh single-use challenge (`POST /keys/challenge`); remembers the relay id it names. */
  const challenge = async (): Promise<string> => {
    const answer = await api('POST', '/keys/challenge');
    expect(answer.status).toBe(200);
    expect(answer.json.expires_at).toBeGreaterThan(Date.now());
    expect(answer.json.relay_id).toMatch(/^[A-Za-z0-9._:-]+$/);
    relayId = answer.json.relay_id;
    return answer.json.challenge;
  };

  /** A proof for this relay (the id of the last challenge), `register` unless told otherwise. */
  const prove = (
    identity: Identity,
    issued: string,
    statement: Omit<ProofStatement, 'relayId'> = {},
    keys: Identity = identity,
  ): string => proofOf(identity, issued, { ...statement, relayId }, keys);

  /**
   * The body fields that register `identity`'s keys: the keys, a fresh challenge and its proof.
   * `link` adds `purpose: 'link'`; `set-keys` needs the user id (PUT /users/<id>/keys).
   */
  const keysBody = async (
    identity: Identity,
    statement: Omit<ProofStatement, 'relayId'> = {},
  ): Promise<Record<string, string>> => {
    const issued = await challenge();
    return {
      sign_pk: b64(identity.signPublicKey),
      box_pk: b64(identity.boxPublicKey),
      ...(statement.purpose === 'link' ? { purpose: 'link' } : {}),
      challenge: issued,
      proof: prove(identity, issued, statement),
    };
  };

  /**
   * Registers a device with `identity`'s keys (a fresh identity by default), proving its signing
   * key; `extra` body fields go along (a `device_id`).
   */
  const register = async (
    name: string,
    identity = deriveIdentity(generateRootSeed()),
    extra: Record<string, string> = {},
  ): Promise<Device> => {
    const body = { device_name: name, ...extra, ...(await keysBody(identity)) };
    const answer = await api('POST', '/keys', { body });
    expect(answer.status, JSON.stringify(answer.json)).toBe(200);
    return { key: answer.json.key, userId: answer.json.user_id, identity };
  };

  /** Links a new device to the user holding `identity`'s keys (POST /keys with a link proof, and `extra`). */
  const link = async (
    name: string,
    identity: Identity,
    extra: Record<string, string> = {},
  ): Promise<Device> => {
    const body = { device_name: name, ...extra, ...(await keysBody(identity, { purpose: 'link' })) };
    const answer = await api('POST', '/keys', { body });
    expect(answer.status, JSON.stringify(answer.json)).toBe(200);
    expect(answer.json.linked).toBe(true);
    return { key: answer.json.key, userId: answer.json.user_id, identity };
  };

  return { challenge, prove, keysBody, register, link, relayId: () => relayId };
}
