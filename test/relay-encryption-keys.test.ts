import { decodeMuxFrame, encodeMuxFrame, type Message } from '@scopesync/core';
import {
  countersignIdentityRotation,
  createDocCipher,
  createDocKey,
  type DocKey,
  deriveIdentity,
  exportRecoveryPhrase,
  generateRootSeed,
  type Identity,
  importRecoveryPhrase,
  MemoryDocKeyring,
  openGrant,
  ready,
  rotateDocKey,
  sealGrant,
  signIdentityRotation,
  unwrapDocKey,
  verifyIdentityRotation,
  verifyIdentityRotationCountersignature,
  wrapDocKey,
} from '@scopesync/crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { enc } from './support/http-client.ts';
import { b64, type Device, keyRegistration, proofOf } from './support/key-registration.ts';
import { useTestRelay } from './support/start-test-relay.ts';

// Public keys and sealed key grants over HTTP, with real crypto: registering a signing key
// needs a proof of possession, one signing key is one user (a second device that imports the
// recovery phrase joins it), and the relay keeps owner-signed grants for sharees.

const t = useTestRelay();

beforeAll(() => ready());

const api = t.api;

const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64url'));
const { challenge, prove, keysBody, register, link, relayId } = keyRegistration(api);

/** Appends one envelope to an encrypted doc over a fresh multiplexed socket; resolves with the answer. */
async function appendOnce(key: string, docName: string, envelope: Uint8Array): Promise<Message> {
  const ws = new WebSocket(`${t.wsUrl}/sync?key=${key}`);
  const frames: Message[] = [];
  let wake = (): void => undefined;
  ws.on('message', (data: Buffer) => {
    frames.push(decodeMuxFrame(new Uint8Array(data)).message);
    wake();
  });
  await new Promise((resolve) => ws.once('open', resolve));
  const next = async (type: Message['type']): Promise<Message> => {
    for (;;) {
      const found = frames.find((m) => m.type === type || m.type === 'error');
      if (found) {
        frames.splice(frames.indexOf(found), 1);
        return found;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  try {
    ws.send(encodeMuxFrame(docName, { type: 'subscribe', mode: 'encrypted', sinceSeq: 0 }));
    expect(await next('permission')).toMatchObject({ access: 'read-write' });
    ws.send(encodeMuxFrame(docName, { type: 'enc-append', ref: 1, envelope }));
    return await next('ack');
  } finally {
    ws.close();
  }
}

describe('registering public keys', () => {
  it('answers with the keys as base64url, whichever base64 they came in', async () => {
    const identity = deriveIdentity(generateRootSeed());
    const issued = await challenge();
    const answer = await api('POST', '/keys', {
      body: {
        device_name: 'padded',
        sign_pk: Buffer.from(identity.signPublicKey).toString('base64'),
        box_pk: Buffer.from(identity.boxPublicKey).toString('base64'),
        challenge: issued,
        proof: Buffer.from(bytes(prove(identity, issued))).toString('base64'),
      },
    });
    expect(answer.json).toMatchObject({ linked: false });
    expect((await api('GET', `/users/${answer.json.user_id}/keys`)).json).toEqual({
      user_id: answer.json.user_id,
      sign_pk: b64(identity.signPublicKey),
      box_pk: b64(identity.boxPublicKey),
      rotations: [],
    });
  });

  it('links a second device that imported the recovery phrase to the same user', async () => {
    const seed = generateRootSeed();
    const identity = deriveIdentity(seed);
    // The first device registered before its identity existed, then registers the keys.
    const first = await api('POST', '/keys', { body: { device_name: 'laptop' } });
    const userId: string = first.json.user_id;
    const put = await api('PUT', `/users/${userId}/keys`, {
      key: first.json.key,
      body: await keysBody(identity, { purpose: 'set-keys', userId }),
    });
    expect(put).toMatchObject({
      status: 200,
      json: { user_id: userId, sign_pk: b64(identity.signPublicKey), box_pk: b64(identity.boxPublicKey) },
    });
    // Registering the same keys again is harmless.
    expect(
      (
        await api('PUT', `/users/${userId}/keys`, {
          key: first.json.key,
          body: await keysBody(identity, { purpose: 'set-keys', userId }),
        })
      ).status,
    ).toBe(200);

    const phrase = await exportRecoveryPhrase(seed);
    const phone = await link('phone', deriveIdentity(await importRecoveryPhrase(phrase)));
    expect(phone.userId).toBe(userId);
    expect(phone.key).not.toBe(first.json.key);
    expect((await api('GET', '/keys/validate', { key: phone.key })).json).toMatchObject({ user_id: userId });

    // The phone writes the user's private document; the laptop's key reads the same log.
    const name = `USER_PRIVATE/${userId}/notes`;
    const cipher = createDocCipher({
      identity: phone.identity,
      docName: name,
      keyring: MemoryDocKeyring.create(),
      userId,
    });
    expect(await appendOnce(phone.key, name, cipher.seal(new Uint8Array([1, 2, 3])))).toMatchObject({
      type: 'ack',
      seq: 1,
    });
    // Someone else's identity is someone else.
    const other = await register('other');
    expect(other.userId).not.toBe(userId);
  });

  it('refuses keys without a valid, fresh proof, and registers nothing', async () => {
    const identity = deriveIdentity(generateRootSeed());
    const impostor = deriveIdentity(generateRootSeed());
    const users = await t.relay.store.countUsers();
    const keys = { sign_pk: b64(identity.signPublicKey), box_pk: b64(identity.boxPublicKey) };
    const reused = await challenge();
    const spent = await api('POST', '/keys', {
      body: { device_name: 'ok', ...keys, challenge: reused, proof: prove(identity, reused) },
    });
    expect(spent.status).toBe(200);
    const otherChallenge = await challenge();
    const cases: Array<[string, Record<string, unknown>, number]> = [
      ['no proof', { ...keys }, 400],
      ['only a sign key', { sign_pk: keys.sign_pk, challenge: otherChallenge, proof: 'x' }, 400],
      [
        'a key that is not 32 bytes',
        { ...keys, sign_pk: 'c2lnbg', challenge: otherChallenge, proof: 'x' },
        400,
      ],
      ['a used challenge', { ...keys, challenge: reused, proof: prove(identity, reused) }, 403],
      [
        'a challenge the relay never issued',
        { ...keys, challenge: b64(new Uint8Array(32)), proof: prove(identity, b64(new Uint8Array(32))) },
        403,
      ],
      ['a proof by another key', { ...keys, ...(await proofFields(impostor, identity)) }, 403],
      [
        'a proof of another challenge',
        { ...keys, challenge: await challenge(), proof: prove(identity, reused) },
        403,
      ],
    ];
    for (const [what, body, status] of cases) {
      const answer = await api('POST', '/keys', { body: { device_name: 'attacker', ...body } });
      expect(answer.status, what).toBe(status);
      expect(answer.json.error, what).toBe(status === 400 ? 'BadRequest' : 'Forbidden');
    }
    expect(await t.relay.store.countUsers()).toBe(users + 1);
  });

  it('links only to a user who holds the key, and registers a new user only for a fresh key', async () => {
    const users = await t.relay.store.countUsers();
    // A recovery phrase with a typo that passes the checksum: other keys, nobody holds them.
    const typo = deriveIdentity(generateRootSeed());
    const linked = await api('POST', '/keys', {
      body: { device_name: 'typo', ...(await keysBody(typo, { purpose: 'link' })) },
    });
    expect(linked).toMatchObject({ status: 404, json: { error: 'NotFound' } });
    expect(linked.json.message).toMatch(/recovery phrase/);
    expect(await t.relay.store.countUsers()).toBe(users);
    // A key that is registered already does not become a second user, nor silently a link.
    const alice = await register('alice');
    const again = await api('POST', '/keys', {
      body: { device_name: 'again', ...(await keysBody(alice.identity)) },
    });
    expect(again).toMatchObject({ status: 409, json: { error: 'Conflict' } });
    expect(await t.relay.store.countUsers()).toBe(users + 1);
  });

  it('refuses a proof made for another relay, purpose or user', async () => {
    const alice = await register('alice');
    const keys = { sign_pk: b64(alice.identity.signPublicKey), box_pk: b64(alice.identity.boxPublicKey) };
    const attempts: Array<[string, (issued: string) => Promise<{ status: number }>]> = [
      [
        "another relay's id",
        async (issued) =>
          api('POST', '/keys', {
            body: {
              device_name: 'x',
              purpose: 'link',
              ...keys,
              challenge: issued,
              proof: proofOf(alice.identity, issued, { relayId: 'relay-elsewhere', purpose: 'link' }),
            },
          }),
      ],
      [
        'a register proof used to link',
        async (issued) =>
          api('POST', '/keys', {
            body: {
              device_name: 'x',
              purpose: 'link',
              ...keys,
              challenge: issued,
              proof: prove(alice.identity, issued),
            },
          }),
      ],
      [
        "a set-keys proof for another user's id",
        async (issued) => {
          const plain = await api('POST', '/keys', { body: { device_name: 'plain' } });
          const fresh = deriveIdentity(generateRootSeed());
          return api('PUT', `/users/${plain.json.user_id}/keys`, {
            key: plain.json.key,
            body: {
              sign_pk: b64(fresh.signPublicKey),
              box_pk: b64(fresh.boxPublicKey),
              challenge: issued,
              proof: prove(fresh, issued, { purpose: 'set-keys', userId: alice.userId }),
            },
          });
        },
      ],
    ];
    for (const [what, attempt] of attempts) {
      expect((await attempt(await challenge())).status, what).toBe(403);
    }
  });

  it('a lost device: rotating the identity locks out whoever kept the old seed', async () => {
    const old = deriveIdentity(generateRootSeed());
    const laptop = await register('laptop', old);
    const userId = laptop.userId;
    const stolen = await link('phone', old);
    // Without a rotation the seed holder relinks at will, and the owner cannot move (409).
    expect((await link('thief', old)).userId).toBe(userId);
    const next = deriveIdentity(generateRootSeed());
    const moveTo = async (signer: Identity, key: string, to: Identity = next) => {
      const issued = await challenge();
      const rotation = signIdentityRotation({ relayId: relayId(), userId, challenge: issued }, signer, to);
      return api('PUT', `/users/${userId}/keys`, {
        key,
        body: {
          sign_pk: b64(to.signPublicKey),
          box_pk: b64(to.boxPublicKey),
          challenge: issued,
          proof: prove(to, issued, { purpose: 'set-keys', userId }),
          rotation: b64(rotation),
          countersignature: b64(
            countersignIdentityRotation({ relayId: relayId(), userId, challenge: issued }, signer, to),
          ),
        },
      });
    };
    // A rotation signed by a key that is not the registered one hands nothing over.
    const forged = await moveTo(deriveIdentity(generateRootSeed()), laptop.key);
    expect(forged).toMatchObject({ status: 403, json: { error: 'Forbidden' } });

    const rotated = await moveTo(old, laptop.key);
    expect(rotated).toMatchObject({ status: 200, json: { rotated: true, revoked_keys: 2 } });
    expect((await api('GET', `/users/${userId}/keys`)).json.sign_pk).toBe(b64(next.signPublicKey));
    // The lost phone's API key is revoked with the identity it held; the laptop's works on.
    expect((await api('GET', '/keys/validate', { key: stolen.key })).status).toBe(401);
    expect((await api('GET', '/keys/validate', { key: laptop.key })).status).toBe(200);
    // The old seed links nothing any more.
    const relink = await api('POST', '/keys', {
      body: { device_name: 'thief', ...(await keysBody(old, { purpose: 'link' })) },
    });
    expect(relink.status).toBe(404);
    // Envelopes signed with the old key are refused, whoever sends them.
    const name = `USER_PRIVATE/${userId}/after-rotation`;
    const byOld = createDocCipher({
      identity: old,
      docName: name,
      keyring: MemoryDocKeyring.create(),
      userId,
    });
    expect(await appendOnce(laptop.key, name, byOld.seal(new Uint8Array([1])))).toMatchObject({
      type: 'error',
      kind: 'Forbidden',
    });
    const byNext = createDocCipher({
      identity: next,
      docName: name,
      keyring: MemoryDocKeyring.create(),
      userId,
    });
    expect(await appendOnce(laptop.key, name, byNext.seal(new Uint8Array([1])))).toMatchObject({
      type: 'ack',
    });
    // A later rotation by the old key (the thief, late in the race) is refused.
    expect((await moveTo(old, laptop.key, deriveIdentity(generateRootSeed()))).status).toBe(403);
  });

  it('a retired signing key registers nothing again, and the relay publishes the signed rotation chain', async () => {
    const old = deriveIdentity(generateRootSeed());
    const laptop = await register('laptop', old);
    const userId = laptop.userId;
    const next = deriveIdentity(generateRootSeed());
    const rotate = async (from: Identity, to: Identity) => {
      const issued = await challenge();
      return api('PUT', `/users/${userId}/keys`, {
        key: laptop.key,
        body: {
          sign_pk: b64(to.signPublicKey),
          box_pk: b64(to.boxPublicKey),
          challenge: issued,
          proof: prove(to, issued, { purpose: 'set-keys', userId }),
          rotation: b64(signIdentityRotation({ relayId: relayId(), userId, challenge: issued }, from, to)),
          countersignature: b64(
            countersignIdentityRotation({ relayId: relayId(), userId, challenge: issued }, from, to),
          ),
        },
      });
    };
    expect((await rotate(old, next)).status).toBe(200);
    // The thief holding the old seed cannot come back as a new, empty user under the old key…
    const fresh = await api('POST', '/keys', {
      body: { device_name: 'thief', ...(await keysBody(old, { purpose: 'register' })) },
    });
    expect(fresh).toMatchObject({ status: 409, json: { error: 'Conflict' } });
    expect(fresh.json.message).toMatch(/retired/);
    // …nor can any user (the owner included) take it back.
    const plain = await api('POST', '/keys', { body: { device_name: 'plain' } });
    const takeBack = await api('PUT', `/users/${plain.json.user_id}/keys`, {
      key: plain.json.key,
      body: await keysBody(old, { purpose: 'set-keys', userId: plain.json.user_id }),
    });
    expect(takeBack.status).toBe(409);
    expect((await rotate(next, old)).status).toBe(409);
    // A second rotation chains on: the relay serves every statement, oldest first, each signed
    // by the key it retired — what a client that pinned `old` follows to the current key.
    const third = deriveIdentity(generateRootSeed());
    expect((await rotate(next, third)).status).toBe(200);
    const published = (await api('GET', `/users/${userId}/keys`)).json;
    expect(published.sign_pk).toBe(b64(third.signPublicKey));
    const chain = published.rotations as Record<string, string>[];
    expect(chain.map((r) => [r.sign_pk, r.next_sign_pk])).toEqual([
      [b64(old.signPublicKey), b64(next.signPublicKey)],
      [b64(next.signPublicKey), b64(third.signPublicKey)],
    ]);
    for (const r of chain) {
      const statement = {
        relayId: r.relay_id as string,
        userId,
        challenge: r.challenge as string,
        oldSignPk: bytes(r.sign_pk as string),
        newSignPk: bytes(r.next_sign_pk as string),
        newBoxPk: bytes(r.next_box_pk as string),
      };
      expect(verifyIdentityRotation(statement, bytes(r.signature as string))).toBe(true);
      expect(verifyIdentityRotationCountersignature(statement, bytes(r.countersignature as string))).toBe(
        true,
      );
    }
  });

  it('lets users set only their own keys, and never swap a signing key', async () => {
    const alice = await register('alice');
    const bob = await register('bob');
    const plain = await api('POST', '/keys', { body: { device_name: 'plain' } });
    const fresh = deriveIdentity(generateRootSeed());
    const put = async (key: string | undefined, userId: string, identity: Identity) =>
      api('PUT', `/users/${userId}/keys`, {
        key,
        body: await keysBody(identity, { purpose: 'set-keys', userId }),
      });
    expect((await put(undefined, alice.userId, fresh)).status).toBe(401);
    expect((await put(bob.key, alice.userId, fresh)).status).toBe(403);
    // A stolen API key must not be enough to take over authorship of the user's documents.
    expect(await put(alice.key, alice.userId, fresh)).toMatchObject({
      status: 409,
      json: { error: 'Conflict' },
    });
    // One signing key, one user: joining happens through POST /keys, not by copying keys.
    expect((await put(plain.json.key, plain.json.user_id, alice.identity)).status).toBe(409);
    expect((await api('GET', `/users/${alice.userId}/keys`)).json.sign_pk).toBe(
      b64(alice.identity.signPublicKey),
    );
    // The server runtime (an admin) may reset them.
    await t.relay.runtime.setUserKeys(alice.userId, {
      signPk: b64(fresh.signPublicKey),
      boxPk: b64(fresh.boxPublicKey),
    });
    expect((await api('GET', `/users/${alice.userId}/keys`)).json.sign_pk).toBe(b64(fresh.signPublicKey));
  });
});

/** A challenge and a proof over `keys` signed by `signer`: an impostor's attempt. */
async function proofFields(signer: Identity, keys: Identity): Promise<Record<string, string>> {
  const issued = await challenge();
  return { challenge: issued, proof: prove(signer, issued, {}, keys) };
}

describe('sealed key grants', () => {
  let owner: Device;
  let sharee: Device;
  let stranger: Device;
  const blobId = 'grants/board';
  let docKey: DocKey;

  beforeAll(async () => {
    owner = await register('owner');
    sharee = await register('sharee');
    stranger = await register('stranger');
    docKey = createDocKey();
    const created = await api('PUT', `/blob/${enc(blobId)}`, {
      key: owner.key,
      body: new Uint8Array([9]),
      headers: { 'x-scopesync-encrypted': '1' },
    });
    expect(created.json).toMatchObject({ encrypted: true });
    const shared = await api('POST', `/share/${enc(blobId)}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_write' },
    });
    expect(shared.status).toBe(200);
  });

  const grantFor = (
    recipient: Device,
    options: { grantor?: Identity; blob?: string; key?: DocKey; box?: Uint8Array } = {},
  ) => {
    const sealed = sealGrant({
      docKey: options.key ?? docKey,
      recipientBoxPublicKey: options.box ?? recipient.identity.boxPublicKey,
      grantor: options.grantor ?? owner.identity,
      blobId: options.blob ?? blobId,
      level: 'read_write',
    });
    return {
      epoch: (options.key ?? docKey).epoch,
      sealed_key: b64(sealed.sealedKey),
      grant: b64(sealed.grant),
    };
  };
  const putGrant = (by: Device, userId: string, body: unknown) =>
    api('PUT', `/blob/${enc(blobId)}/keys/${userId}`, { key: by.key, body });

  it('stores the owner’s grant for a sharee, who opens the key it seals', async () => {
    const stored = await putGrant(owner, sharee.userId, grantFor(sharee));
    expect(stored).toMatchObject({
      status: 200,
      json: { blob_id: blobId, user_id: sharee.userId, epoch: 1 },
    });
    const mine = await api('GET', `/blob/${enc(blobId)}/keys/me`, { key: sharee.key });
    expect(mine.status).toBe(200);
    expect(mine.json.grants).toHaveLength(1);
    const [grant] = mine.json.grants;
    expect(grant).toMatchObject({ epoch: 1, granted_by: owner.userId });
    // The sharee checks the grantor against the owner's published key, then opens the key.
    const ownerKeys = (await api('GET', `/users/${owner.userId}/keys`)).json;
    const opened = openGrant({
      grant: bytes(grant.grant),
      sealedKey: bytes(grant.sealed_key),
      recipient: sharee.identity,
      isGrantorAllowed: (key) => b64(key) === ownerKeys.sign_pk,
      blobId,
    });
    expect(opened.docKey).toEqual(docKey);
    // The owner keeps a grant to itself for its other devices; a rotation adds the next epoch.
    expect((await putGrant(owner, owner.userId, grantFor(owner))).status).toBe(200);
    const next = rotateDocKey(docKey);
    expect((await putGrant(owner, sharee.userId, grantFor(sharee, { key: next }))).status).toBe(200);
    const both = await api('GET', `/blob/${enc(blobId)}/keys/me`, { key: sharee.key });
    expect(both.json.grants.map((g: { epoch: number }) => g.epoch)).toEqual([1, 2]);
    const own = await api('GET', `/blob/${enc(blobId)}/keys/me`, { key: owner.key });
    expect(own.json.grants).toHaveLength(1);
  });

  it('refuses grants the owner did not sign for this blob and this sharee', async () => {
    const cases: Array<[string, Device, string, unknown, number]> = [
      ['signed by another key', owner, sharee.userId, grantFor(sharee, { grantor: stranger.identity }), 403],
      [
        'sealed to another box key',
        owner,
        sharee.userId,
        grantFor(sharee, { box: stranger.identity.boxPublicKey }),
        403,
      ],
      ['for another blob', owner, sharee.userId, grantFor(sharee, { blob: 'other-blob' }), 403],
      ['with a wrong epoch', owner, sharee.userId, { ...grantFor(sharee), epoch: 7 }, 400],
      ['that is garbage', owner, sharee.userId, { ...grantFor(sharee), grant: b64(new Uint8Array(40)) }, 400],
      ['stored by a sharee', sharee, sharee.userId, grantFor(sharee, { grantor: sharee.identity }), 403],
      ['for a user the blob is not shared with', owner, stranger.userId, grantFor(stranger), 404],
      ['by a stranger', stranger, sharee.userId, grantFor(sharee), 404],
    ];
    for (const [what, by, userId, body, status] of cases) {
      expect((await putGrant(by, userId, body)).status, what).toBe(status);
    }
    expect((await api('GET', `/blob/${enc(blobId)}/keys/me`, { key: stranger.key })).status).toBe(404);
    expect((await api('GET', `/blob/${enc(blobId)}/keys/me`)).status).toBe(401);
  });

  it('deletes a sharee’s grants when the share is revoked', async () => {
    expect((await api('DELETE', `/share/${enc(blobId)}/${sharee.userId}`, { key: owner.key })).status).toBe(
      204,
    );
    expect((await api('GET', `/blob/${enc(blobId)}/keys/me`, { key: sharee.key })).status).toBe(404);
    await api('POST', `/share/${enc(blobId)}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_only' },
    });
    const after = await api('GET', `/blob/${enc(blobId)}/keys/me`, { key: sharee.key });
    expect(after.json.grants).toEqual([]);
    // The owner's own grant stays.
    expect((await api('GET', `/blob/${enc(blobId)}/keys/me`, { key: owner.key })).json.grants).toHaveLength(
      1,
    );
  });
});

describe('wrapped document keys', () => {
  it('keeps the owner’s wrapped keys for the owner’s other devices, first write of a key id winning', async () => {
    const seed = generateRootSeed();
    const laptop = await register('laptop', deriveIdentity(seed));
    const phone = await link('phone', deriveIdentity(seed));
    expect(phone.userId).toBe(laptop.userId);
    const doc = `USER_PRIVATE/${laptop.userId}/diary`;
    const path = `/doc-keys/${enc(doc)}`;
    expect((await api('GET', path, { key: laptop.key })).json).toEqual({ keys: [] });
    const first = createDocKey();
    const wrapped = wrapDocKey(laptop.identity.kek, doc, first);
    expect((await api('PUT', `${path}/${first.id}`, { key: laptop.key, body: wrapped })).status).toBe(204);
    // Another wrapping of the same key id does not replace the first.
    const again = wrapDocKey(laptop.identity.kek, doc, first);
    expect((await api('PUT', `${path}/${first.id}`, { key: laptop.key, body: again })).status).toBe(204);
    const next = rotateDocKey(first);
    await api('PUT', `${path}/${next.id}`, {
      key: laptop.key,
      body: wrapDocKey(laptop.identity.kek, doc, next),
    });

    const listed = await api('GET', path, { key: phone.key });
    expect(listed.json.keys.map((k: { key_id: string; epoch: number }) => [k.key_id, k.epoch])).toEqual([
      [first.id, 1],
      [next.id, 2],
    ]);
    expect(bytes(listed.json.keys[0].wrapped)).toEqual(wrapped);
    expect(unwrapDocKey(phone.identity.kek, doc, bytes(listed.json.keys[0].wrapped))).toEqual(first);
  });

  it('refuses other users, malformed keys, and blobs that are not the caller’s encrypted blob', async () => {
    const owner = await register('wk-owner');
    const other = await register('wk-other');
    const doc = `USER_PRIVATE/${owner.userId}/secret`;
    const key = createDocKey();
    const wrapped = wrapDocKey(owner.identity.kek, doc, key);
    const put = (who: Device, name: string, keyId: string, body: Uint8Array) =>
      api('PUT', `/doc-keys/${enc(name)}/${keyId}`, { key: who.key, body });
    expect((await put(other, doc, key.id, wrapped)).status).toBe(403);
    expect((await api('GET', `/doc-keys/${enc(doc)}`, { key: other.key })).status).toBe(404);
    expect((await api('GET', `/doc-keys/${enc(doc)}`)).status).toBe(401);
    expect((await put(owner, doc, createDocKey().id, wrapped)).status).toBe(400);
    expect((await put(owner, doc, key.id, wrapped.subarray(1))).status).toBe(400);
    expect((await put(owner, doc, 'NOT-HEX', wrapped)).status).toBe(400);
    expect((await put(owner, `USER_PUBLIC/${owner.userId}/x`, key.id, wrapped)).status).toBe(400);

    const blob = 'wk-blob';
    const blobWrapped = wrapDocKey(owner.identity.kek, `blob/${blob}`, key);
    expect((await put(owner, `blob/${blob}`, key.id, blobWrapped)).status).toBe(404);
    await api('PUT', `/blob/${blob}`, { key: owner.key, body: 'plain' });
    expect((await put(owner, `blob/${blob}`, key.id, blobWrapped)).status).toBe(409);
    const sealedBlob = 'wk-sealed';
    const sealedWrapped = wrapDocKey(owner.identity.kek, `blob/${sealedBlob}`, key);
    await api('PUT', `/blob/${sealedBlob}`, {
      key: owner.key,
      body: new Uint8Array([1]),
      headers: { 'x-scopesync-encrypted': '1' },
    });
    // Plaintext bytes never land in an encrypted blob.
    expect((await api('PUT', `/blob/${sealedBlob}`, { key: owner.key, body: 'oops' })).status).toBe(400);
    await api('POST', `/share/${sealedBlob}`, {
      key: owner.key,
      body: { user_id: other.userId, access_level: 'read_write' },
    });
    expect((await put(other, `blob/${sealedBlob}`, key.id, sealedWrapped)).status).toBe(403);
    expect((await put(owner, `blob/${sealedBlob}`, key.id, sealedWrapped)).status).toBe(204);
    expect((await api('GET', `/doc-keys/${enc(`blob/${sealedBlob}`)}`, { key: other.key })).status).toBe(403);
    expect(
      (await api('GET', `/doc-keys/${enc(`blob/${sealedBlob}`)}`, { key: owner.key })).json.keys,
    ).toHaveLength(1);
    // Deleting the blob deletes its keys.
    expect((await api('DELETE', `/blob/${sealedBlob}`, { key: owner.key })).status).toBe(204);
    await api('PUT', `/blob/${sealedBlob}`, {
      key: owner.key,
      body: new Uint8Array([2]),
      headers: { 'x-scopesync-encrypted': '1' },
    });
    expect(
      (await api('GET', `/doc-keys/${enc(`blob/${sealedBlob}`)}`, { key: owner.key })).json.keys,
    ).toEqual([]);
  });
});
