import { isSyncError } from '@scopesync/core';
import { beforeAll, describe, expect, test } from 'vitest';
import { createDocKey, rotateDocKey } from './doc-key.ts';
import { openEnvelope, readEnvelopeHeader, sealEnvelope } from './envelope.ts';
import { envelopeHash, newStreamId } from './history-clock.ts';
import { deriveIdentity, generateRootSeed, type Identity } from './identity.ts';
import { type Member, memberListKeys, signMemberList, verifyMemberListChain } from './member-list.ts';
import { safetyNumber } from './safety-number.ts';
import { signHead, verifyHead } from './signed-head.ts';
import { ready } from './sodium.ts';

const DOC = 'blob/shared-notes';
const ALICE = 'user_00000000000000a1';
const BOB = 'user_00000000000000b0';

function kindOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return isSyncError(error) ? error.kind : `not a SyncError: ${String(error)}`;
  }
  return 'no error';
}

let alice: Identity;
let bob: Identity;
let eve: Identity;
beforeAll(async () => {
  await ready();
  [alice, bob, eve] = [0, 1, 2].map(() => deriveIdentity(generateRootSeed())) as [
    Identity,
    Identity,
    Identity,
  ];
});

const owner = () => ({
  userId: ALICE,
  signPublicKey: alice.signPublicKey,
  signSecretKey: alice.signSecretKey,
});
const bobMember = (level: Member['level']): Member => ({
  userId: BOB,
  level,
  signPublicKey: bob.signPublicKey,
  boxPublicKey: bob.boxPublicKey,
});

describe('member list', () => {
  test('a chain of owner-signed versions verifies and yields members and key pairs', () => {
    const k1 = createDocKey();
    const k2 = rotateDocKey(k1);
    const v1 = signMemberList({ docName: DOC, owner: owner(), epoch: 1, keyId: k1.id, members: [] });
    const v2 = signMemberList({
      docName: DOC,
      owner: owner(),
      previous: v1,
      epoch: 1,
      keyId: k1.id,
      members: [bobMember('read_only')],
    });
    const v3 = signMemberList({
      docName: DOC,
      owner: owner(),
      previous: v2,
      epoch: 2,
      keyId: k2.id,
      members: [],
    });
    const chain = verifyMemberListChain([v1, v2, v3], alice.signPublicKey, DOC);
    expect(chain.map((l) => l.version)).toEqual([1, 2, 3]);
    expect(chain[1]?.members).toMatchObject([{ userId: BOB, level: 'read_only' }]);
    expect([...memberListKeys(chain)]).toEqual([`1:${k1.id}`, `2:${k2.id}`]);
  });

  test('a forged, reordered, dropped or epoch-jumping version is refused', () => {
    const k1 = createDocKey();
    const v1 = signMemberList({ docName: DOC, owner: owner(), epoch: 1, keyId: k1.id, members: [] });
    const v2 = signMemberList({
      docName: DOC,
      owner: owner(),
      previous: v1,
      epoch: 1,
      keyId: k1.id,
      members: [bobMember('read_write')],
    });
    const v3 = signMemberList({
      docName: DOC,
      owner: owner(),
      previous: v2,
      epoch: 1,
      keyId: k1.id,
      members: [],
    });
    // Someone else's key signing as the owner.
    const forged = signMemberList({
      docName: DOC,
      owner: { userId: ALICE, signPublicKey: eve.signPublicKey, signSecretKey: eve.signSecretKey },
      epoch: 1,
      keyId: k1.id,
      members: [],
    });
    expect(kindOf(() => verifyMemberListChain([forged], alice.signPublicKey, DOC))).toBe('Forbidden');
    expect(kindOf(() => verifyMemberListChain([v1, v3], alice.signPublicKey, DOC))).toBe('Forbidden');
    expect(kindOf(() => verifyMemberListChain([v2, v1], alice.signPublicKey, DOC))).toBe('Forbidden');
    expect(kindOf(() => verifyMemberListChain([v1], alice.signPublicKey, 'blob/other'))).toBe('Forbidden');
    const jump = signMemberList({
      docName: DOC,
      owner: owner(),
      previous: v1,
      epoch: 9,
      keyId: createDocKey(9).id,
      members: [],
    });
    expect(kindOf(() => verifyMemberListChain([v1, jump], alice.signPublicKey, DOC))).toBe('Forbidden');
    const flipped = v2.slice();
    flipped[150] = (flipped[150] as number) ^ 1;
    expect(kindOf(() => verifyMemberListChain([v1, flipped], alice.signPublicKey, DOC))).toBe('Forbidden');
  });
});

describe('member list across an identity rotation', () => {
  test('versions signed by the key history verify in order; a retired key cannot sign after its successor', () => {
    // Alice rotated from `alice` to `next`; `eve` holds neither.
    const next = deriveIdentity(generateRootSeed());
    const asNext = { userId: ALICE, signPublicKey: next.signPublicKey, signSecretKey: next.signSecretKey };
    const k1 = createDocKey();
    const k2 = rotateDocKey(k1);
    const v1 = signMemberList({ docName: DOC, owner: owner(), epoch: 1, keyId: k1.id, members: [] });
    const v2 = signMemberList({
      docName: DOC,
      owner: asNext,
      previous: v1,
      epoch: 2,
      keyId: k2.id,
      members: [],
    });
    const history = [alice.signPublicKey, next.signPublicKey];
    expect(verifyMemberListChain([v1, v2], history, DOC).map((l) => l.epoch)).toEqual([1, 2]);
    // Without the history, the handover is a change of owner.
    expect(kindOf(() => verifyMemberListChain([v1, v2], next.signPublicKey, DOC))).toBe('Forbidden');
    expect(kindOf(() => verifyMemberListChain([v1, v2], alice.signPublicKey, DOC))).toBe('Forbidden');
    // The thief who kept the old seed signs a version after the new key did: refused.
    const late = signMemberList({
      docName: DOC,
      owner: owner(),
      previous: v2,
      epoch: 2,
      keyId: k2.id,
      members: [],
    });
    expect(kindOf(() => verifyMemberListChain([v1, v2, late], history, DOC))).toBe('Forbidden');
    // A key outside the history signs nothing.
    const asEve = { userId: ALICE, signPublicKey: eve.signPublicKey, signSecretKey: eve.signSecretKey };
    const forged = signMemberList({
      docName: DOC,
      owner: asEve,
      previous: v1,
      epoch: 2,
      keyId: k2.id,
      members: [],
    });
    expect(kindOf(() => verifyMemberListChain([v1, forged], history, DOC))).toBe('Forbidden');
  });
});

describe('envelope history and kind', () => {
  test('the chain, blob version and snapshot commitments are signed and readable', () => {
    const key = createDocKey();
    const stream = newStreamId();
    const author = { ...alice, userId: ALICE };
    const first = sealEnvelope({
      docName: DOC,
      key,
      author,
      plaintext: new Uint8Array([1]),
      chain: { stream, counter: 1, previous: new Uint8Array(32) },
    });
    const second = sealEnvelope({
      docName: DOC,
      key,
      author,
      plaintext: new Uint8Array([2]),
      chain: { stream, counter: 2, previous: envelopeHash(first) },
    });
    expect(readEnvelopeHeader(second).chain).toEqual({ stream, counter: 2, previous: envelopeHash(first) });
    const snapshot = sealEnvelope({
      docName: DOC,
      key,
      author,
      kind: 'snapshot',
      plaintext: new Uint8Array([3]),
      commitments: {
        parent: new Uint8Array(32),
        clock: [{ stream, authorKey: alice.signPublicKey, counter: 2, hash: envelopeHash(second) }],
      },
    });
    expect(readEnvelopeHeader(snapshot).commitments?.clock).toEqual([
      { stream, authorKey: alice.signPublicKey, counter: 2, hash: envelopeHash(second) },
    ]);
  });

  test('raw blob bytes and a Yjs log entry differ in the signed, authenticated kind', () => {
    const key = createDocKey();
    const raw = sealEnvelope({
      docName: DOC,
      key,
      author: alice,
      kind: 'raw',
      plaintext: new Uint8Array([7]),
      blobVersion: 4,
    });
    const opened = openEnvelope(raw, { docName: DOC, keys: () => key, isAuthorAllowed: () => true });
    expect(opened.kind).toBe('raw');
    expect(opened.header.blobVersion).toBe(4);
    const asUpdate = raw.slice();
    asUpdate[1] = 1;
    expect(
      kindOf(() => openEnvelope(asUpdate, { docName: DOC, keys: () => key, isAuthorAllowed: () => true })),
    ).toBe('Forbidden');
  });
});

describe('signed heads and safety numbers', () => {
  test('a head verifies for its signer and document only', () => {
    const head = signHead(
      DOC,
      { userId: BOB, ...bob },
      { memberListVersion: 3, snapshot: new Uint8Array(32), clock: [] },
    );
    expect(verifyHead(head, DOC, () => true)).toMatchObject({ userId: BOB, memberListVersion: 3 });
    expect(kindOf(() => verifyHead(head, 'blob/other', () => true))).toBe('Forbidden');
    expect(kindOf(() => verifyHead(head, DOC, (key) => key === alice.signPublicKey))).toBe('Forbidden');
  });

  test('both users compute the same safety number; a substituted key changes it', () => {
    const a = { userId: ALICE, signPublicKey: alice.signPublicKey, boxPublicKey: alice.boxPublicKey };
    const b = { userId: BOB, signPublicKey: bob.signPublicKey, boxPublicKey: bob.boxPublicKey };
    expect(safetyNumber(a, b)).toBe(safetyNumber(b, a));
    expect(safetyNumber(a, b)).toMatch(/^\d{5}( \d{5}){5}$/);
    expect(safetyNumber(a, { ...b, boxPublicKey: eve.boxPublicKey })).not.toBe(safetyNumber(a, b));
  });
});
