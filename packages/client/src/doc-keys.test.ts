import { MemoryKeyValueStore, SyncError } from '@scopesync/core';
import {
  createDocKey,
  deriveIdentity,
  generateRootSeed,
  readEnvelopeHeader,
  ready,
  sealEnvelope,
} from '@scopesync/crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { DocKeys, type DocKeysContext } from './doc-keys.ts';
import type { KeyApi, StoredGrant } from './key-api.ts';
import { Trust } from './trust.ts';

const ME = 'user_00000000000000a1';
const OTHER = 'user_00000000000000b2';

beforeAll(() => ready());

/** A relay's key routes in memory, counting requests; `offline` makes each one Unavailable. */
function fakeApi() {
  const docKeys = new Map<string, Uint8Array[]>();
  const grants = new Map<string, StoredGrant[]>();
  const lists = new Map<string, Uint8Array[]>();
  const calls = { docKeys: 0, putDocKey: 0 };
  const state = { offline: false };
  const online = (): void => {
    if (state.offline) throw new SyncError('Unavailable', 'offline');
  };
  const api = {
    async docKeys(docName: string) {
      online();
      calls.docKeys++;
      return docKeys.get(docName) ?? [];
    },
    async putDocKey(docName: string, _keyId: string, wrapped: Uint8Array) {
      online();
      calls.putDocKey++;
      docKeys.set(docName, [...(docKeys.get(docName) ?? []), wrapped]);
    },
    async myGrants(blobId: string) {
      online();
      return grants.get(blobId) ?? [];
    },
    async putGrant(blobId: string, _userId: string, _epoch: number, grant: StoredGrant) {
      online();
      grants.set(blobId, [...(grants.get(blobId) ?? []), grant]);
    },
    async blobOwner() {
      online();
      return ME;
    },
    async shares() {
      online();
      return [];
    },
    async userKeys() {
      online();
      return undefined;
    },
    async memberLists(blobId: string) {
      online();
      return lists.get(blobId) ?? [];
    },
    async putMemberList(blobId: string, list: Uint8Array) {
      online();
      lists.set(blobId, [...(lists.get(blobId) ?? []), list]);
    },
    async heads() {
      online();
      return [];
    },
    async putHead() {
      online();
    },
  };
  return { api: api as unknown as KeyApi, calls, state };
}

/** A DocKeys context for `identity` as user ME on its own store. */
function context(
  api: KeyApi,
  identity: ReturnType<typeof deriveIdentity>,
  kv = new MemoryKeyValueStore(),
): DocKeysContext {
  const trust = new Trust({
    kv,
    api,
    self: async () => ({
      userId: ME,
      keys: { signPublicKey: identity.signPublicKey, boxPublicKey: identity.boxPublicKey },
    }),
  });
  return { kv, api, identity, userId: ME, trust };
}

function update(text: string): Uint8Array {
  const doc = new Y.Doc();
  doc.getText('t').insert(0, text);
  return Y.encodeStateAsUpdate(doc);
}

function textOf(...updates: Uint8Array[]): string {
  const doc = new Y.Doc();
  for (const u of updates) Y.applyUpdate(doc, u);
  return doc.getText('t').toString();
}

describe('DocKeys', () => {
  const name = `USER_PRIVATE/${ME}/notes`;

  it('a private doc: a second device of the user fetches the key the first one uploaded', async () => {
    const { api } = fakeApi();
    const identity = deriveIdentity(generateRootSeed());
    const laptop = await DocKeys.load(context(api, identity), name);
    expect(await laptop.upload()).toBe(true);
    const envelope = await laptop.seal(update('hello'));

    const phone = await DocKeys.load(context(api, identity), name);
    expect(textOf(await phone.openFromRelay(envelope))).toBe('hello');
    expect(phone.keyring.current().id).toBe(laptop.keyring.current().id);
  });

  it('an edit sealed for the local store takes no place in the stream; one served by a relay is refused', async () => {
    const { api } = fakeApi();
    const identity = deriveIdentity(generateRootSeed());
    const laptop = await DocKeys.load(context(api, identity), name);
    await laptop.upload();
    const stored = await laptop.sealLocal(update('kept'));
    expect(textOf(await laptop.open(stored))).toBe('kept');
    expect(readEnvelopeHeader(stored).chain.counter).toBe(0);
    // The next envelope sent is the stream's first: a reader sees no gap.
    const sent = await laptop.seal(update('sent'));
    expect(readEnvelopeHeader(sent).chain.counter).toBe(1);

    const phone = await DocKeys.load(context(api, identity), name);
    expect(textOf(await phone.openFromRelay(sent))).toBe('sent');
    await expect(phone.openFromRelay(stored)).rejects.toMatchObject({ kind: 'Forbidden' });
  });

  it('offline, a new doc gets its own key; the other device fetches it when it meets an envelope under it', async () => {
    const { api, state } = fakeApi();
    const identity = deriveIdentity(generateRootSeed());
    const online = await DocKeys.load(context(api, identity), name);
    await online.upload();
    state.offline = true;
    const offline = await DocKeys.load(context(api, identity), name);
    expect(offline.keyring.current().id).not.toBe(online.keyring.current().id);
    const envelope = await offline.seal(update('written offline'));
    state.offline = false;
    await offline.upload();
    expect(textOf(await online.openFromRelay(envelope))).toBe('written offline');
  });

  it('refuses from the relay what another author signed; asks the relay for a missing key only once', async () => {
    const { api, calls } = fakeApi();
    const identity = deriveIdentity(generateRootSeed());
    const keys = await DocKeys.load(context(api, identity), name);
    const stranger = deriveIdentity(generateRootSeed());
    const forged = sealEnvelope({
      docName: name,
      key: keys.keyring.current(),
      author: { ...stranger, userId: OTHER },
      plaintext: update('forged'),
    });
    await expect(keys.openFromRelay(forged)).rejects.toMatchObject({ kind: 'Forbidden' });

    const unknownKey = sealEnvelope({
      docName: name,
      key: createDocKey(),
      author: identity,
      plaintext: update('x'),
    });
    const before = calls.docKeys;
    await expect(keys.openFromRelay(unknownKey)).rejects.toMatchObject({ kind: 'NotFound' });
    await expect(keys.openFromRelay(unknownKey)).rejects.toMatchObject({ kind: 'NotFound' });
    expect(calls.docKeys - before).toBe(1);
  });

  it('a snapshot under a newer epoch raises the floor, which survives a reload', async () => {
    const { api } = fakeApi();
    const identity = deriveIdentity(generateRootSeed());
    const kv = new MemoryKeyValueStore();
    const blob = await DocKeys.load(context(api, identity, kv), 'blob/deck');
    const first = blob.keyring.current();
    const oldEnvelope = await blob.seal(update('old'));
    await blob.upload(); // the blob exists: its signed member list names the first key
    await blob.rotate();
    const snapshot = await blob.sealSnapshot(update('state'));
    expect(textOf(await blob.openFromRelay(snapshot))).toBe('state');
    expect(blob.keyring.minEpoch).toBe(2);
    await expect(blob.openFromRelay(oldEnvelope)).rejects.toMatchObject({ kind: 'Conflict' });
    // What this device stored itself still opens (it was checked when it arrived).
    expect(textOf(await blob.open(oldEnvelope))).toBe('old');

    const reloaded = await DocKeys.load(context(api, identity, kv), 'blob/deck');
    expect(reloaded.keyring.minEpoch).toBe(2);
    expect(reloaded.keyring.get(first.id, first.epoch)).toBeDefined();
    await expect(reloaded.openFromRelay(oldEnvelope)).rejects.toMatchObject({ kind: 'Conflict' });
  });

  it('keeps keys at rest wrapped under the KEK only', async () => {
    const { api } = fakeApi();
    const identity = deriveIdentity(generateRootSeed());
    const kv = new MemoryKeyValueStore();
    const keys = await DocKeys.load(context(api, identity, kv), name);
    const raw = keys.keyring.current().bytes;
    const stored = JSON.stringify(await kv.list('keys'), (_k, v) => (v instanceof Uint8Array ? [...v] : v));
    expect(stored).toContain('"wrapped"');
    expect(stored).not.toContain(JSON.stringify([...raw]).slice(1, -1));
  });
});
