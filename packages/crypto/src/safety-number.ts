import { SyncError } from '@scopesync/core';
import { checkLength, concatBytes, utf8 } from './bytes.ts';
import { sodium } from './sodium.ts';

/** A user's identity as two people compare it: the user id and both public keys. */
export interface KeyOwner {
  readonly userId: string;
  readonly signPublicKey: Uint8Array;
  readonly boxPublicKey: Uint8Array;
}

const DOMAIN = utf8('scopesync:safety-number:v1\0');
const GROUPS = 6;

function part(owner: KeyOwner): Uint8Array {
  if (typeof owner.userId !== 'string' || owner.userId.length === 0 || owner.userId.length > 255) {
    throw new SyncError('BadRequest', 'user id must be a non-empty string');
  }
  const id = utf8(owner.userId);
  return concatBytes(
    Uint8Array.of(id.length),
    id,
    checkLength(owner.signPublicKey, 32, 'signing key'),
    checkLength(owner.boxPublicKey, 32, 'box key'),
  );
}

/**
 * The safety number of two users' keys: 30 digits in six groups of five, the same whichever of
 * the two computes it. Two people read theirs to each other (in person, on a call); equal
 * numbers mean each holds the other's real keys, a difference means someone — the relay —
 * substituted one. Requires `ready()`.
 */
export function safetyNumber(a: KeyOwner, b: KeyOwner): string {
  const [first, second] = [part(a), part(b)].sort((x, y) => compare(x, y));
  const hash = sodium().crypto_generichash(
    32,
    concatBytes(DOMAIN, first as Uint8Array, second as Uint8Array),
    null,
  );
  const groups: string[] = [];
  for (let i = 0; i < GROUPS; i++) {
    // 5 bytes (40 bits) per group, reduced to 5 digits: the bias is below 1e-7.
    let value = 0;
    for (let j = 0; j < 5; j++) value = value * 256 + (hash[i * 5 + j] as number);
    groups.push(String(value % 100_000).padStart(5, '0'));
  }
  return groups.join(' ');
}

function compare(x: Uint8Array, y: Uint8Array): number {
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  }
  return x.length - y.length;
}
