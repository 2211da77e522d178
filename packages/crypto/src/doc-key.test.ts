import { isSyncError } from '@scopesync/core';
import { beforeAll, describe, expect, test } from 'vitest';
import { createDocKey, FIRST_EPOCH, isKeyId, rotateDocKey } from './doc-key.ts';
import { deriveIdentity, generateRootSeed } from './identity.ts';
import { MemoryDocKeyring } from './memory-doc-keyring.ts';
import { ready } from './sodium.ts';
import { unwrapDocKey, WRAPPED_DOC_KEY_BYTES, wrapDocKey } from './wrapped-doc-key.ts';

function kindOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return isSyncError(error) ? error.kind : `not a SyncError: ${String(error)}`;
  }
  return 'no error';
}

const DOC = 'USER_PRIVATE/user_0123456789abcdef/notes';
const OTHER_DOC = 'USER_PRIVATE/user_0123456789abcdef/diary';

beforeAll(ready);

describe('document keys', () => {
  test('a new key is 32 random bytes with a fresh id at the first epoch', () => {
    const a = createDocKey();
    const b = createDocKey();
    expect(a.bytes).toHaveLength(32);
    expect(isKeyId(a.id)).toBe(true);
    expect(a.epoch).toBe(FIRST_EPOCH);
    expect(b.id).not.toBe(a.id);
    expect(b.bytes).not.toEqual(a.bytes);
  });

  test('rotation moves to the next epoch with a new id and new bytes', () => {
    const first = createDocKey();
    const second = rotateDocKey(first);
    expect(second.epoch).toBe(first.epoch + 1);
    expect(second.id).not.toBe(first.id);
    expect(second.bytes).not.toEqual(first.bytes);
    expect(rotateDocKey(second).epoch).toBe(first.epoch + 2);
  });

  test('malformed keys and epochs are BadRequests; the last epoch cannot rotate', () => {
    const key = createDocKey();
    expect(kindOf(() => createDocKey(-1))).toBe('BadRequest');
    expect(kindOf(() => createDocKey(1.5))).toBe('BadRequest');
    expect(kindOf(() => rotateDocKey({ ...key, id: 'nope' }))).toBe('BadRequest');
    expect(kindOf(() => rotateDocKey({ ...key, bytes: new Uint8Array(16) }))).toBe('BadRequest');
    expect(kindOf(() => rotateDocKey({ ...key, epoch: 0xffff_ffff }))).toBe('Conflict');
  });
});

describe('wrapped document keys', () => {
  const identity = () => deriveIdentity(generateRootSeed());

  test('unwrap gives back the key, id and epoch', () => {
    const { kek } = identity();
    const key = rotateDocKey(createDocKey());
    const wrapped = wrapDocKey(kek, DOC, key);
    expect(wrapped).toHaveLength(WRAPPED_DOC_KEY_BYTES);
    expect(unwrapDocKey(kek, DOC, wrapped)).toEqual(key);
  });

  test('a wrapped key moved to another document does not open', () => {
    const { kek } = identity();
    const wrapped = wrapDocKey(kek, DOC, createDocKey());
    expect(kindOf(() => unwrapDocKey(kek, OTHER_DOC, wrapped))).toBe('Forbidden');
  });

  test("another user's KEK does not open it", () => {
    const wrapped = wrapDocKey(identity().kek, DOC, createDocKey());
    expect(kindOf(() => unwrapDocKey(identity().kek, DOC, wrapped))).toBe('Forbidden');
  });

  test('every flipped bit is refused: the version byte as malformed, the rest as not opening', () => {
    const { kek } = identity();
    const wrapped = wrapDocKey(kek, DOC, createDocKey());
    for (let i = 0; i < wrapped.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const altered = wrapped.slice();
        altered[i] = (altered[i] as number) ^ (1 << bit);
        expect(
          kindOf(() => unwrapDocKey(kek, DOC, altered)),
          `byte ${i} bit ${bit}`,
        ).toBe(i === 0 ? 'BadRequest' : 'Forbidden');
      }
    }
  });

  test('truncated or padded input is a BadRequest', () => {
    const { kek } = identity();
    const wrapped = wrapDocKey(kek, DOC, createDocKey());
    for (let length = 0; length < wrapped.length; length++) {
      expect(kindOf(() => unwrapDocKey(kek, DOC, wrapped.subarray(0, length)))).toBe('BadRequest');
    }
    expect(kindOf(() => unwrapDocKey(kek, DOC, new Uint8Array([...wrapped, 0])))).toBe('BadRequest');
  });

  test('bad KEKs and doc names are BadRequests', () => {
    const key = createDocKey();
    expect(kindOf(() => wrapDocKey(new Uint8Array(16), DOC, key))).toBe('BadRequest');
    expect(kindOf(() => wrapDocKey(identity().kek, '../etc/passwd', key))).toBe('BadRequest');
  });
});

describe('MemoryDocKeyring', () => {
  test('the newest epoch is current; every key stays findable by id and epoch', () => {
    const keyring = MemoryDocKeyring.create();
    const first = keyring.current();
    const second = keyring.rotate();
    expect(second.epoch).toBe(first.epoch + 1);
    expect(keyring.current()).toBe(second);
    expect(keyring.get(first.id, first.epoch)).toBe(first);
    expect(keyring.get(first.id, second.epoch)).toBeUndefined();
    expect(keyring.keys()).toEqual([first, second]);
  });

  test('adding an older key keeps the newer one current', () => {
    const old = createDocKey();
    const newer = rotateDocKey(old);
    const keyring = new MemoryDocKeyring([newer]);
    keyring.add(old);
    expect(keyring.current()).toBe(newer);
  });

  test('requireEpoch only ever raises the minimum', () => {
    const keyring = new MemoryDocKeyring([], { minEpoch: 2 });
    expect(keyring.minEpoch).toBe(2);
    keyring.requireEpoch(5);
    keyring.requireEpoch(3);
    expect(keyring.minEpoch).toBe(5);
  });

  test('an empty keyring has no current key', () => {
    expect(kindOf(() => new MemoryDocKeyring().current())).toBe('NotFound');
  });
});
