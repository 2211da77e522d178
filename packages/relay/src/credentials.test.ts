import type { IncomingMessage } from 'node:http';
import { isSyncError, isUserId, Level } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import {
  apiKeyOf,
  generateApiKey,
  hashApiKey,
  isApiKeyShaped,
  newUserId,
  registerDevice,
} from './credentials.ts';
import { MemoryRelayStore } from './memory-relay-store.ts';

const request = (headers: Record<string, string>, url = '/'): IncomingMessage =>
  ({ headers, url }) as unknown as IncomingMessage;

describe('credentials', () => {
  it('makes 32-byte base64url keys and stores only their SHA-256', () => {
    const key = generateApiKey();
    expect(Buffer.from(key, 'base64url')).toHaveLength(32);
    expect(isApiKeyShaped(key)).toBe(true);
    expect(generateApiKey()).not.toBe(key);
    expect(hashApiKey(key)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiKey(key)).not.toContain(key);
    // Stored hashes must stay what they were: the lowercase hex SHA-256 of the key's UTF-8 bytes.
    expect(hashApiKey('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('gives the same device name a different user id every time', () => {
    const a = newUserId('laptop');
    const b = newUserId('laptop');
    expect(isUserId(a) && isUserId(b)).toBe(true);
    expect(a).not.toBe(b);
  });

  it('finds the key in x-api-key, then Authorization: Bearer, then ?key=', () => {
    expect(apiKeyOf(request({ 'x-api-key': 'a', authorization: 'Bearer b' }, '/?key=c'))).toBe('a');
    expect(apiKeyOf(request({ authorization: 'Bearer b' }, '/?key=c'))).toBe('b');
    expect(apiKeyOf(request({ authorization: 'Basic xyz' }, '/sync/x?key=c'))).toBe('c');
    expect(apiKeyOf(request({}, '/sync'))).toBeNull();
  });

  it('registers a device with a hashed key and validates what it is given', async () => {
    const store = new MemoryRelayStore();
    // 32 bytes in standard base64 with padding: stored as base64url without, the one form.
    const boxBytes = new Uint8Array(32).map((_, i) => 250 - i);
    const { key, userId } = await registerDevice(
      store,
      { deviceName: 'phone', boxPk: Buffer.from(boxBytes).toString('base64'), level: Level.Admin },
      5,
    );
    expect(await store.getUser(userId)).toEqual({
      userId,
      level: Level.Admin,
      deviceName: 'phone',
      signPk: null,
      boxPk: Buffer.from(boxBytes).toString('base64url'),
      createdAt: 5,
    });
    expect((await store.getKey(hashApiKey(key)))?.userId).toBe(userId);
    for (const bad of [
      { deviceName: '' },
      { deviceName: 'x'.repeat(129) },
      { deviceName: 'a\nb' },
      { deviceName: 'ok', signPk: 'not base64!' },
      // Shaped like base64 but not a 32-byte key.
      { deviceName: 'ok', signPk: 'c2lnbg' },
      { deviceName: 'ok', boxPk: 'A'.repeat(44) },
      { deviceName: 'ok', boxPk: `${'A'.repeat(42)}=` },
    ]) {
      const error = await registerDevice(store, bad).catch((e: unknown) => e);
      expect(isSyncError(error, 'BadRequest')).toBe(true);
    }
    expect(await store.countUsers()).toBe(1);
  });
});
