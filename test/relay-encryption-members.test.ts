import {
  createDocKey,
  type DocKey,
  ready,
  rotateDocKey,
  signHead,
  signMemberList,
  verifyMemberListChain,
} from '@scopesync/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enc } from './support/http-client.ts';
import { type Device, keyRegistration } from './support/key-registration.ts';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

// The member list and signed head routes of encrypted blobs (docs/encryption.md, "Trust for
// shared encrypted blobs"), on a real relay with real signatures.

let t: TestRelay;
beforeAll(async () => {
  await ready();
  t = await startTestRelay();
});
afterAll(() => t.close());

const api: TestRelay['api'] = (method, path, options) => t.api(method, path, options);
const { register } = keyRegistration(api);
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

function list(
  owner: Device,
  blobId: string,
  previous: Uint8Array | undefined,
  key: DocKey,
  members: Device[] = [],
) {
  return signMemberList({
    docName: `blob/${blobId}`,
    previous,
    owner: { userId: owner.userId, ...owner.identity },
    epoch: key.epoch,
    keyId: key.id,
    members: members.map((m) => ({
      userId: m.userId,
      level: 'read_write' as const,
      signPublicKey: m.identity.signPublicKey,
      boxPublicKey: m.identity.boxPublicKey,
    })),
  });
}

describe('member lists', () => {
  it('keeps the owner’s chain and refuses anything that does not extend it', async () => {
    const owner = await register('owner');
    const sharee = await register('sharee');
    const blobId = 'members-plan';
    const created = await api('PUT', `/blob/${blobId}`, {
      key: owner.key,
      body: new Uint8Array([1]),
      headers: { 'x-scopesync-encrypted': '1' },
    });
    expect(created.status).toBe(200);
    await api('POST', `/share/${enc(blobId)}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_write' },
    });
    const put = (who: Device, bytes: Uint8Array) =>
      api('PUT', `/blob/${enc(blobId)}/members`, { key: who.key, body: { list: b64(bytes) } });

    const k1 = createDocKey();
    const v1 = list(owner, blobId, undefined, k1);
    expect((await put(owner, v1)).json).toMatchObject({
      blob_id: blobId,
      version: 1,
      epoch: 1,
      key_id: k1.id,
    });
    // The same version again, or another version 1: the chain cannot be rewritten.
    expect((await put(owner, v1)).status).toBe(403);
    // A sharee cannot sign the owner's list, even with a list it signed itself.
    const bySharee = signMemberList({
      docName: `blob/${blobId}`,
      previous: v1,
      owner: { userId: owner.userId, ...sharee.identity },
      epoch: 1,
      keyId: k1.id,
      members: [],
    });
    expect((await put(sharee, bySharee)).status).toBe(403);
    expect((await put(owner, bySharee)).status).toBe(403);
    // An epoch jump, or a list for another blob.
    expect((await put(owner, list(owner, blobId, v1, createDocKey(5)))).status).toBe(403);
    expect((await put(owner, list(owner, 'elsewhere', v1, k1))).status).toBe(403);
    // A skipped version.
    const v2 = list(owner, blobId, v1, k1, [sharee]);
    expect((await put(owner, list(owner, blobId, v2, k1))).status).toBe(403);
    // The next version, then a rotation one epoch up.
    expect((await put(owner, v2)).status).toBe(200);
    const k2 = rotateDocKey(k1);
    const v3 = list(owner, blobId, v2, k2, [sharee]);
    expect((await put(owner, v3)).json).toMatchObject({ version: 3, epoch: 2 });
    expect((await put(owner, new Uint8Array([1, 2, 3]))).status).toBe(400);

    const read = await api('GET', `/blob/${enc(blobId)}/members`, { key: sharee.key });
    const served = (read.json as { lists: string[] }).lists.map(
      (l) => new Uint8Array(Buffer.from(l, 'base64url')),
    );
    expect(
      verifyMemberListChain(served, owner.identity.signPublicKey, `blob/${blobId}`).map((l) => l.version),
    ).toEqual([1, 2, 3]);
    // A stranger learns nothing.
    const stranger = await register('stranger');
    expect((await api('GET', `/blob/${enc(blobId)}/members`, { key: stranger.key })).status).toBe(404);
    expect((await put(stranger, v1)).status).toBe(404);
  });

  it('keeps each member’s latest signed head, signed by that member for this blob', async () => {
    const owner = await register('owner');
    const sharee = await register('sharee');
    const blobId = 'heads-plan';
    await api('PUT', `/blob/${blobId}`, {
      key: owner.key,
      body: new Uint8Array([1]),
      headers: { 'x-scopesync-encrypted': '1' },
    });
    await api('POST', `/share/${enc(blobId)}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_only' },
    });
    const head = (who: Device, docName = `blob/${blobId}`, version = 1) =>
      signHead(
        docName,
        { userId: who.userId, ...who.identity },
        { memberListVersion: version, snapshot: new Uint8Array(32), clock: [] },
      );
    const put = (who: Device, bytes: Uint8Array) =>
      api('PUT', `/blob/${enc(blobId)}/heads/me`, { key: who.key, body: { head: b64(bytes) } });
    expect((await put(sharee, head(sharee))).status).toBe(204);
    expect((await put(owner, head(owner, `blob/${blobId}`, 2))).status).toBe(204);
    // Someone else's head, or one for another blob.
    expect((await put(sharee, head(owner))).status).toBe(403);
    expect((await put(sharee, head(sharee, 'blob/other'))).status).toBe(403);
    const heads = (await api('GET', `/blob/${enc(blobId)}/heads`, { key: sharee.key })).json as {
      heads: { user_id: string }[];
    };
    expect(heads.heads.map((h) => h.user_id).sort()).toEqual([owner.userId, sharee.userId].sort());
  });
});
