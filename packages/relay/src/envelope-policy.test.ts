import {
  type Caller,
  isSyncError,
  Level,
  type ObjectRecord,
  parseDocName,
  type UserId,
} from '@scopesync/core';
import {
  createDocCipher,
  createDocKey,
  type DocKey,
  deriveIdentity,
  generateRootSeed,
  type Identity,
  MemoryDocKeyring,
  ready,
  signMemberList,
} from '@scopesync/crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { toBase64Url } from './credentials.ts';
import { createEnvelopeVerifier } from './envelope-policy.ts';
import { MemoryRelayStore } from './memory-relay-store.ts';

// The policy alone, over a memory store and real envelopes. The relay wiring (104 errors on the
// socket, the log left unchanged) is tested in test/relay-encryption-envelopes.test.ts.

const OWNER = 'user_000000000000000a' as UserId;
const WRITER = 'user_000000000000000b' as UserId;
const READER = 'user_000000000000000c' as UserId;
const user = (userId: UserId): Caller => ({ kind: 'user', userId, level: Level.User });

async function kindOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  return isSyncError(error) ? error.kind : `no error (${String(error)})`;
}

describe('createEnvelopeVerifier', () => {
  const store = new MemoryRelayStore();
  const verify = createEnvelopeVerifier({ store });
  const identities = new Map<UserId, Identity>();
  const blob = parseDocName('blob/plan').name;
  const notes = parseDocName(`USER_PRIVATE/${OWNER}/notes`).name;
  const keyring = new MemoryDocKeyring();
  const record = (name: string, owner: UserId): ObjectRecord => ({
    name,
    owner,
    read: 1,
    write: 1,
    encrypted: true,
    minEpoch: 0,
    createdAt: 1,
    updatedAt: 1,
    size: 0,
    version: 0,
  });
  const seal = (who: UserId, name: string, kind: 'update' | 'snapshot' = 'update', ring = keyring) => {
    const cipher = createDocCipher({
      identity: identities.get(who) as Identity,
      docName: name,
      keyring: ring,
    });
    return kind === 'update' ? cipher.seal(new Uint8Array([1])) : cipher.sealSnapshot(new Uint8Array([2]));
  };

  /** The owner signs the next member list version of blob/plan under `key` and stores it. */
  const lists: Uint8Array[] = [];
  const publish = async (key: DocKey) => {
    const owner = identities.get(OWNER) as Identity;
    const member = (userId: UserId, level: 'read_only' | 'read_write') => {
      const identity = identities.get(userId) as Identity;
      return { userId, level, signPublicKey: identity.signPublicKey, boxPublicKey: identity.boxPublicKey };
    };
    const list = signMemberList({
      docName: blob,
      previous: lists.at(-1),
      owner: { userId: OWNER, ...owner },
      epoch: key.epoch,
      keyId: key.id,
      members: [member(WRITER, 'read_write'), member(READER, 'read_only')],
    });
    lists.push(list);
    await store.appendMemberList({
      blobId: 'plan',
      version: lists.length,
      epoch: key.epoch,
      keyId: key.id,
      list,
      createdAt: 1,
    });
  };

  beforeAll(async () => {
    await ready();
    keyring.add(MemoryDocKeyring.create().current());
    for (const [i, id] of [OWNER, WRITER, READER].entries()) {
      const identity = deriveIdentity(generateRootSeed());
      identities.set(id, identity);
      await store.createUser(
        {
          userId: id,
          level: Level.User,
          deviceName: `d${i}`,
          signPk: toBase64Url(identity.signPublicKey),
          boxPk: toBase64Url(identity.boxPublicKey),
          createdAt: i,
        },
        { keyHash: `h${i}`, userId: id, createdAt: i, revokedAt: null },
      );
    }
    await store.createObject(record(notes, OWNER));
    await store.createObject(record(blob, OWNER));
    await store.putShare({
      blobId: 'plan',
      userId: WRITER,
      level: 'read_write',
      grantedBy: OWNER,
      grantedAt: 1,
    });
    await store.putShare({
      blobId: 'plan',
      userId: READER,
      level: 'read_only',
      grantedBy: OWNER,
      grantedAt: 1,
    });
    await publish(keyring.current());
  });

  it('accepts the owner on a private doc and the owner or a read_write sharee on a blob', async () => {
    await verify(notes, user(OWNER), seal(OWNER, notes));
    await verify(blob, user(OWNER), seal(OWNER, blob));
    await verify(blob, user(WRITER), seal(WRITER, blob));
  });

  it('refuses anyone else, and envelopes that are not the sender’s own', async () => {
    expect(await kindOf(verify(notes, user(WRITER), seal(WRITER, notes)))).toBe('Forbidden');
    expect(await kindOf(verify(blob, user(READER), seal(READER, blob)))).toBe('Forbidden');
    expect(await kindOf(verify(blob, user(WRITER), seal(OWNER, blob)))).toBe('Forbidden');
    expect(await kindOf(verify(blob, { kind: 'guest' }, seal(OWNER, blob)))).toBe('Forbidden');
    expect(await kindOf(verify(blob, user(OWNER), seal(OWNER, notes)))).toBe('Forbidden');
    expect(await kindOf(verify(blob, user(OWNER), new Uint8Array(10)))).toBe('BadRequest');
  });

  it('refuses a blob envelope under a key the owner’s member list does not name, and any sharee’s snapshot', async () => {
    const unlisted = new MemoryDocKeyring([createDocKey(keyring.current().epoch)]);
    expect(await kindOf(verify(blob, user(WRITER), seal(WRITER, blob, 'update', unlisted)))).toBe(
      'Forbidden',
    );
    expect(await kindOf(verify(blob, user(OWNER), seal(OWNER, blob, 'update', unlisted)))).toBe('Forbidden');
    expect(await kindOf(verify(blob, user(WRITER), seal(WRITER, blob, 'snapshot')))).toBe('Forbidden');
    await verify(blob, user(OWNER), seal(OWNER, blob, 'update'));
  });

  it('checks the server runtime’s envelopes for form, signature and document only', async () => {
    await verify(blob, { kind: 'runtime' }, seal(READER, blob));
    expect(await kindOf(verify(notes, { kind: 'runtime' }, seal(READER, blob)))).toBe('Forbidden');
  });

  it('raises the minimum epoch on the owner’s snapshot and refuses older envelopes after it', async () => {
    const old = new MemoryDocKeyring(keyring.keys());
    const rotated = new MemoryDocKeyring(keyring.keys());
    await publish(rotated.rotate());
    // A sharee cannot rotate the key: it would lock the owner out.
    expect(await kindOf(verify(blob, user(WRITER), seal(WRITER, blob, 'snapshot', rotated)))).toBe(
      'Forbidden',
    );
    expect((await store.getObject(blob))?.minEpoch).toBe(0);
    await verify(blob, user(OWNER), seal(OWNER, blob, 'snapshot', rotated));
    expect((await store.getObject(blob))?.minEpoch).toBe(2);
    expect(await kindOf(verify(blob, user(WRITER), seal(WRITER, blob, 'update', old)))).toBe('KeyRotated');
    expect(await kindOf(verify(blob, user(OWNER), seal(OWNER, blob, 'snapshot', old)))).toBe('KeyRotated');
    await verify(blob, user(WRITER), seal(WRITER, blob, 'update', rotated));
  });

  it('refuses a plaintext blob', async () => {
    const plain = parseDocName('blob/plain').name;
    await store.createObject({ ...record(plain, OWNER), encrypted: false });
    expect(await kindOf(verify(plain, user(OWNER), seal(OWNER, plain)))).toBe('BadRequest');
  });
});
