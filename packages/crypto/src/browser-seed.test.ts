import { isSyncError } from '@scopesync/core';
import { describe, expect, test } from 'vitest';
import { createSeedWrappingKey, unwrapSeedForBrowser, wrapSeedForBrowser } from './browser-seed.ts';

async function kindOf(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    return isSyncError(error) ? error.kind : `not a SyncError: ${String(error)}`;
  }
  return 'no error';
}

const seed = (): Uint8Array => crypto.getRandomValues(new Uint8Array(32));

describe('root seed at rest in a browser', () => {
  test('round-trips under a key that cannot be exported', async () => {
    const rootSeed = seed();
    const stored = await wrapSeedForBrowser(rootSeed);
    expect(stored.key.extractable).toBe(false);
    expect(stored.key.algorithm.name).toBe('AES-GCM');
    await expect(crypto.subtle.exportKey('raw', stored.key)).rejects.toThrow();
    expect(stored.wrapped).toHaveLength(61);
    expect(await unwrapSeedForBrowser(stored)).toEqual(rootSeed);
  });

  test('survives a structured clone, as IndexedDB stores it', async () => {
    const rootSeed = seed();
    const stored = await wrapSeedForBrowser(rootSeed);
    const cloned = structuredClone(stored);
    expect(cloned.key.extractable).toBe(false);
    expect(await unwrapSeedForBrowser(cloned)).toEqual(rootSeed);
  });

  test('one key can wrap again (re-wrapping after a seed import)', async () => {
    const key = await createSeedWrappingKey();
    const a = await wrapSeedForBrowser(seed(), key);
    const b = await wrapSeedForBrowser(seed(), key);
    expect(a.key).toBe(key);
    expect(await unwrapSeedForBrowser(b)).not.toEqual(await unwrapSeedForBrowser(a));
  });

  test('another key, or any altered byte after the version, is Forbidden', async () => {
    const stored = await wrapSeedForBrowser(seed());
    const other = await createSeedWrappingKey();
    expect(await kindOf(() => unwrapSeedForBrowser({ ...stored, key: other }))).toBe('Forbidden');
    for (let i = 1; i < stored.wrapped.length; i++) {
      const wrapped = stored.wrapped.slice();
      wrapped[i] = (wrapped[i] as number) ^ 1;
      expect(await kindOf(() => unwrapSeedForBrowser({ ...stored, wrapped })), `byte ${i}`).toBe('Forbidden');
    }
  });

  test('malformed input and extractable keys are BadRequests', async () => {
    const stored = await wrapSeedForBrowser(seed());
    expect(await kindOf(() => unwrapSeedForBrowser({ ...stored, wrapped: stored.wrapped.subarray(1) }))).toBe(
      'BadRequest',
    );
    expect(await kindOf(() => wrapSeedForBrowser(new Uint8Array(8)))).toBe('BadRequest');
    const extractable = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, [
      'encrypt',
      'decrypt',
    ]);
    expect(await kindOf(() => wrapSeedForBrowser(seed(), extractable))).toBe('BadRequest');
  });
});
