import { isSyncError } from '@scopesync/core';
import { beforeAll, describe, expect, test } from 'vitest';
import * as Y from 'yjs';
import { createDocCipher } from './doc-cipher.ts';
import { openGrant, sealGrant } from './grant.ts';
import { deriveIdentity, generateRootSeed, type Identity } from './identity.ts';
import { MemoryDocKeyring } from './memory-doc-keyring.ts';
import { exportRecoveryPhrase, importRecoveryPhrase } from './recovery-phrase.ts';
import { ready } from './sodium.ts';
import { unwrapDocKey, wrapDocKey } from './wrapped-doc-key.ts';

function kindOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return isSyncError(error) ? error.kind : `not a SyncError: ${String(error)}`;
  }
  return 'no error';
}

const USER = 'user_00000000000000aa';
const DOC = `USER_PRIVATE/${USER}/todo`;
const same = (a: Uint8Array) => (b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

beforeAll(ready);

describe('DocCipher', () => {
  test('a second device restored from the phrase reads the first device’s private document', async () => {
    const seed = generateRootSeed();
    const laptop = deriveIdentity(seed);
    const keyring = MemoryDocKeyring.create();
    // The laptop stores the wrapped key (locally and on the relay) and seals its edits.
    const wrapped = keyring.keys().map((key) => wrapDocKey(laptop.kek, DOC, key));
    const laptopCipher = createDocCipher({ identity: laptop, docName: DOC, keyring, userId: USER });
    const doc = new Y.Doc();
    const log: Uint8Array[] = [];
    doc.on('update', (update: Uint8Array) => log.push(laptopCipher.seal(update)));
    doc.getMap('data').set('title', 'groceries');
    doc.getArray<string>('items').push(['milk', 'eggs']);

    const phone = deriveIdentity(await importRecoveryPhrase(await exportRecoveryPhrase(seed)));
    const phoneKeyring = new MemoryDocKeyring(wrapped.map((w) => unwrapDocKey(phone.kek, DOC, w)));
    const phoneCipher = createDocCipher({ identity: phone, docName: DOC, keyring: phoneKeyring });
    const copy = new Y.Doc();
    for (const envelope of log) Y.applyUpdate(copy, phoneCipher.open(envelope));
    expect(copy.getMap('data').get('title')).toBe('groceries');
    expect(copy.getArray('items').toArray()).toEqual(['milk', 'eggs']);
    expect(phoneCipher.openEnvelope(log[0] as Uint8Array).userId).toBe(USER);
  });

  test('a snapshot envelope replaces the log', () => {
    const me = deriveIdentity(generateRootSeed());
    const cipher = createDocCipher({ identity: me, docName: DOC, keyring: MemoryDocKeyring.create() });
    const doc = new Y.Doc();
    doc.getText('t').insert(0, 'hello world');
    const snapshot = cipher.sealSnapshot(Y.encodeStateAsUpdate(doc));
    expect(cipher.openEnvelope(snapshot).kind).toBe('snapshot');
    const copy = new Y.Doc();
    Y.applyUpdate(copy, cipher.open(snapshot));
    expect(copy.getText('t').toString()).toBe('hello world');
  });

  test('by default only the identity itself may write a private document', () => {
    const keyring = MemoryDocKeyring.create();
    const me = createDocCipher({ identity: deriveIdentity(generateRootSeed()), docName: DOC, keyring });
    const intruder = createDocCipher({ identity: deriveIdentity(generateRootSeed()), docName: DOC, keyring });
    expect(kindOf(() => me.open(intruder.seal(new Uint8Array([0]))))).toBe('Forbidden');
  });

  test('an envelope from another document is refused', () => {
    const identity = deriveIdentity(generateRootSeed());
    const keyring = MemoryDocKeyring.create();
    const a = createDocCipher({ identity, docName: DOC, keyring });
    const b = createDocCipher({ identity, docName: `USER_PRIVATE/${USER}/other`, keyring });
    expect(kindOf(() => b.open(a.seal(new Uint8Array([0]))))).toBe('Forbidden');
  });

  test('sharing and revoking a blob: the removed member is shut out of later writes', () => {
    const [alice, bob] = [0, 1].map(() => deriveIdentity(generateRootSeed())) as [Identity, Identity];
    const docName = 'blob/plans';
    let members = [alice.signPublicKey, bob.signPublicKey];
    const isMember = (key: Uint8Array) => members.some(same(key));
    const aliceKeys = MemoryDocKeyring.create();
    const aliceCipher = createDocCipher({
      identity: alice,
      docName,
      keyring: aliceKeys,
      isAuthorAllowed: isMember,
    });

    // Alice shares with Bob; Bob opens the grant and writes.
    const grant = sealGrant({
      docKey: aliceKeys.current(),
      recipientBoxPublicKey: bob.boxPublicKey,
      grantor: alice,
      blobId: 'plans',
      level: 'read_write',
    });
    const bobKeys = new MemoryDocKeyring([
      openGrant({ ...grant, recipient: bob, isGrantorAllowed: same(alice.signPublicKey) }).docKey,
    ]);
    const bobCipher = createDocCipher({
      identity: bob,
      docName,
      keyring: bobKeys,
      isAuthorAllowed: isMember,
    });
    const fromBob = bobCipher.seal(new Uint8Array([1]));
    expect(aliceCipher.open(fromBob)).toEqual(new Uint8Array([1]));

    // Alice revokes Bob: he is no longer a member, the key rotates, a snapshot under the new epoch
    // replaces the log, and older epochs are refused from then on.
    members = [alice.signPublicKey];
    aliceKeys.rotate();
    const snapshot = aliceCipher.sealSnapshot(new Uint8Array([9]));
    aliceKeys.requireEpoch(aliceKeys.current().epoch);
    expect(aliceCipher.open(snapshot)).toEqual(new Uint8Array([9]));
    expect(kindOf(() => aliceCipher.open(bobCipher.seal(new Uint8Array([2]))))).toBe('Forbidden');
    members = [alice.signPublicKey, bob.signPublicKey];
    expect(kindOf(() => aliceCipher.open(bobCipher.seal(new Uint8Array([2]))))).toBe('Conflict');
    // And Bob cannot read what Alice writes now.
    expect(kindOf(() => bobCipher.open(aliceCipher.seal(new Uint8Array([3]))))).toBe('NotFound');
  });

  test('a bad doc name is a BadRequest', () => {
    const identity = deriveIdentity(generateRootSeed());
    expect(
      kindOf(() => createDocCipher({ identity, docName: 'nope', keyring: MemoryDocKeyring.create() })),
    ).toBe('BadRequest');
  });
});
