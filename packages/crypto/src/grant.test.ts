import { isSyncError } from '@scopesync/core';
import { beforeAll, describe, expect, test } from 'vitest';
import { createDocKey, type DocKey } from './doc-key.ts';
import { openEnvelope, sealEnvelope } from './envelope.ts';
import { type OpenGrantOptions, openGrant, readGrant, sealGrant, verifyGrantSignature } from './grant.ts';
import { deriveIdentity, generateRootSeed, type Identity } from './identity.ts';
import { ready, sodium } from './sodium.ts';

function kindOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return isSyncError(error) ? error.kind : `not a SyncError: ${String(error)}`;
  }
  return 'no error';
}

const BLOB = 'photos/2024/cat.jpg';
const same = (a: Uint8Array) => (b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

let alice: Identity;
let bob: Identity;
let eve: Identity;
let docKey: DocKey;

beforeAll(async () => {
  await ready();
  [alice, bob, eve] = [0, 1, 2].map(() => deriveIdentity(generateRootSeed())) as [
    Identity,
    Identity,
    Identity,
  ];
  docKey = createDocKey(3);
});

const share = (level: 'read_only' | 'read_write' = 'read_only') =>
  sealGrant({ docKey, recipientBoxPublicKey: bob.boxPublicKey, grantor: alice, blobId: BLOB, level });

const asBob = (sealed: { sealedKey: Uint8Array; grant: Uint8Array }, extra: Partial<OpenGrantOptions> = {}) =>
  openGrant({
    ...sealed,
    recipient: bob,
    isGrantorAllowed: same(alice.signPublicKey),
    blobId: BLOB,
    ...extra,
  });

describe('grants', () => {
  test('the recipient opens the document key, the level and the blob, and can read what the owner wrote', () => {
    const opened = asBob(share('read_write'));
    expect(opened.docKey).toEqual(docKey);
    expect(opened).toMatchObject({ level: 'read_write', blobId: BLOB, epoch: 3 });
    expect(opened.grantorKey).toEqual(alice.signPublicKey);

    const docName = `blob/${BLOB}`;
    const envelope = sealEnvelope({
      docName,
      key: docKey,
      author: alice,
      plaintext: new Uint8Array([1, 2, 3]),
    });
    const read = openEnvelope(envelope, {
      docName,
      keys: (id, epoch) =>
        id === opened.docKey.id && epoch === opened.docKey.epoch ? opened.docKey : undefined,
      isAuthorAllowed: same(alice.signPublicKey),
    });
    expect(read.plaintext).toEqual(new Uint8Array([1, 2, 3]));
  });

  test('only the recipient can open it: anyone else holding both pieces is Forbidden', () => {
    const sealed = share();
    expect(kindOf(() => asBob(sealed, { recipient: eve }))).toBe('Forbidden');
    // Even an attacker who lies about their box public key cannot open the sealed key.
    expect(
      kindOf(() =>
        asBob(sealed, { recipient: { boxPublicKey: bob.boxPublicKey, boxSecretKey: eve.boxSecretKey } }),
      ),
    ).toBe('Forbidden');
  });

  test('a sealed key swapped in by someone else is Forbidden', () => {
    const sealed = share();
    const inner = new Uint8Array(53);
    inner[0] = 1;
    inner.set([0, 0, 0, 3], 1);
    inner.set(sodium().from_hex(docKey.id), 5);
    inner.set(createDocKey().bytes, 21);
    const planted = sodium().crypto_box_seal(inner, bob.boxPublicKey);
    expect(kindOf(() => asBob({ grant: sealed.grant, sealedKey: planted }))).toBe('Forbidden');
  });

  test('a grant signed by someone who may not share the blob is Forbidden', () => {
    const byEve = sealGrant({
      docKey,
      recipientBoxPublicKey: bob.boxPublicKey,
      grantor: eve,
      blobId: BLOB,
      level: 'read_only',
    });
    expect(kindOf(() => asBob(byEve))).toBe('Forbidden');
  });

  test('a grant for another blob is Forbidden', () => {
    expect(kindOf(() => asBob(share(), { blobId: 'photos/2024/dog.jpg' }))).toBe('Forbidden');
  });

  test('a flipped bit in the grant or the sealed key is refused', () => {
    const sealed = share();
    for (let i = 0; i < sealed.grant.length; i++) {
      const grant = sealed.grant.slice();
      grant[i] = (grant[i] as number) ^ 0x10;
      expect(['BadRequest', 'Forbidden'], `grant byte ${i}`).toContain(
        kindOf(() => asBob({ ...sealed, grant })),
      );
    }
    for (let i = 0; i < sealed.sealedKey.length; i++) {
      const sealedKey = sealed.sealedKey.slice();
      sealedKey[i] = (sealedKey[i] as number) ^ 0x10;
      expect(
        kindOf(() => asBob({ ...sealed, sealedKey })),
        `sealed key byte ${i}`,
      ).toBe('Forbidden');
    }
  });

  test('truncated grants are BadRequests', () => {
    const { grant, sealedKey } = share();
    for (let length = 0; length < grant.length; length++) {
      expect(
        kindOf(() => asBob({ grant: grant.subarray(0, length), sealedKey })),
        `length ${length}`,
      ).toBe('BadRequest');
    }
  });

  test('the relay can read and verify a grant without opening the key', () => {
    const { grant } = share('read_write');
    const info = readGrant(grant);
    expect(info).toMatchObject({ level: 'read_write', blobId: BLOB, epoch: 3, keyId: docKey.id });
    expect(info.recipientBoxPublicKey).toEqual(bob.boxPublicKey);
    expect(verifyGrantSignature(grant, [alice.signPublicKey]).blobId).toBe(BLOB);
    expect(kindOf(() => verifyGrantSignature(grant, [eve.signPublicKey]))).toBe('Forbidden');
    const altered = grant.slice();
    altered[10] = (altered[10] as number) ^ 1;
    expect(kindOf(() => verifyGrantSignature(altered, () => true))).toBe('Forbidden');
  });

  test('bad levels and blob ids are BadRequests', () => {
    const base = { docKey, recipientBoxPublicKey: bob.boxPublicKey, grantor: alice, blobId: BLOB };
    expect(kindOf(() => sealGrant({ ...base, level: 'owner' as 'read_only' }))).toBe('BadRequest');
    expect(kindOf(() => sealGrant({ ...base, blobId: '../x', level: 'read_only' }))).toBe('BadRequest');
  });
});
