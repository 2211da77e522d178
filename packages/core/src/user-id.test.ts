import { describe, expect, it } from 'vitest';
import { isUserId } from './address.ts';
import { userIdOfSigningKey } from './user-id.ts';

describe('userIdOfSigningKey', () => {
  it('gives one valid user id per key, the same on every call, different for another key', () => {
    const key = new Uint8Array(32).fill(7);
    const id = userIdOfSigningKey(key);
    expect(isUserId(id)).toBe(true);
    expect(userIdOfSigningKey(key.slice())).toBe(id);
    const other = key.slice();
    other[31] = 8;
    expect(userIdOfSigningKey(other)).not.toBe(id);
  });

  it('is SHA-256 of the domain and the key (a fixed vector, so relay and client cannot drift apart)', () => {
    // sha256("scopesync:user-id:v1\0" || 32 zero bytes), first 8 bytes in hex.
    expect(userIdOfSigningKey(new Uint8Array(32))).toBe('user_1701ce53e97ce978');
  });
});
