import { decodeMuxFrame, type EncEntry, encodeMuxFrame, type Message } from '@scopesync/core';
import {
  createDocCipher,
  type DocCipher,
  deriveIdentity,
  generateRootSeed,
  MemoryDocKeyring,
  ready,
  signMemberList,
} from '@scopesync/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { enc } from './support/http-client.ts';
import { type Device, keyRegistration } from './support/key-registration.ts';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

// The relay checks every encrypted envelope against the signing keys users registered, with
// real crypto from @scopesync/crypto on a real relay: it stores what the writer may write and
// refuses everything else with a clear 104 error, leaving the stored log as it was.

let t: TestRelay;
/** Every relay this file started, the restarted one last. */
const relays: TestRelay[] = [];

beforeAll(async () => {
  await ready();
  t = await startTestRelay();
  relays.push(t);
});
afterAll(async () => {
  for (const relay of relays.reverse()) await relay.close();
});

const api: TestRelay['api'] = (method, path, options) => t.api(method, path, options);
const { register } = keyRegistration(api);

type Frame = { docName: string; message: Message };

/** A multiplexed socket that records the frames it receives. */
async function openMux(key: string) {
  const ws = new WebSocket(`${t.wsUrl}/sync?key=${key}`);
  const frames: Frame[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data: Buffer) => {
    frames.push(decodeMuxFrame(new Uint8Array(data)));
    for (const wake of waiters.splice(0)) wake();
  });
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = async (match: (f: Frame) => boolean): Promise<Frame> => {
    for (;;) {
      const i = frames.findIndex(match);
      if (i >= 0) return frames.splice(i, 1)[0] as Frame;
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  let ref = 0;
  const send = (docName: string, message: Message): void => ws.send(encodeMuxFrame(docName, message));
  return {
    ws,
    next,
    async subscribe(docName: string, sinceSeq = 0) {
      send(docName, { type: 'subscribe', mode: 'encrypted', sinceSeq });
      const answer = await next(
        (f) => f.docName === docName && (f.message.type === 'permission' || f.message.type === 'error'),
      );
      return answer.message;
    },
    /** Sends an enc append (or snapshot) and resolves with its ack or error. */
    async write(docName: string, envelope: Uint8Array, throughSeq?: number) {
      ref += 1;
      const mine = ref;
      send(
        docName,
        throughSeq === undefined
          ? { type: 'enc-append', ref: mine, envelope }
          : { type: 'enc-snapshot', ref: mine, throughSeq, snapshot: envelope },
      );
      const answer = await next(
        (f) =>
          f.docName === docName &&
          (f.message.type === 'ack' || f.message.type === 'error') &&
          f.message.ref === mine,
      );
      return answer.message as Extract<Message, { type: 'ack' | 'error' }>;
    },
    close: () => ws.close(),
  };
}

/** The stored log of an encrypted doc, as a fresh subscriber of `device` receives it. */
async function readLog(device: Device, docName: string): Promise<EncEntry[]> {
  const mux = await openMux(device.key);
  try {
    expect(await mux.subscribe(docName)).toMatchObject({ type: 'permission' });
    // The first enc-entries page answers the subscribe; logs in these tests fit in one page.
    const frame = await mux.next((f) => f.docName === docName && f.message.type === 'enc-entries');
    return frame.message.type === 'enc-entries' ? [...frame.message.entries] : [];
  } finally {
    mux.close();
  }
}

/** A Yjs update that sets `field` to `value` in a fresh doc: realistic plaintext. */
function update(field: string, value: string): Uint8Array {
  const doc = new Y.Doc();
  doc.getMap('data').set(field, value);
  return Y.encodeStateAsUpdate(doc);
}

/** The owner signs the next version of the blob's member list and stores it on the relay. */
async function publishMembers(
  owner: Device,
  blobId: string,
  previous: Uint8Array | undefined,
  key: { epoch: number; id: string },
  members: readonly { device: Device; level: 'read_only' | 'read_write' }[],
): Promise<Uint8Array> {
  const list = signMemberList({
    docName: `blob/${blobId}`,
    previous,
    owner: { userId: owner.userId, ...owner.identity },
    epoch: key.epoch,
    keyId: key.id,
    members: members.map(({ device, level }) => ({
      userId: device.userId,
      level,
      signPublicKey: device.identity.signPublicKey,
      boxPublicKey: device.identity.boxPublicKey,
    })),
  });
  const put = await api('PUT', `/blob/${enc(blobId)}/members`, {
    key: owner.key,
    body: { list: Buffer.from(list).toString('base64url') },
  });
  expect(put.status).toBe(200);
  return list;
}

function cipherFor(
  device: Device,
  docName: string,
  keyring: MemoryDocKeyring,
  userId = device.userId,
): DocCipher {
  return createDocCipher({ identity: device.identity, docName, keyring, userId });
}

describe('USER_PRIVATE envelopes', () => {
  let alice: Device;
  let bob: Device;
  let notes: string;
  let keyring: MemoryDocKeyring;
  let aliceCipher: DocCipher;
  let firstEnvelope: Uint8Array;

  beforeAll(async () => {
    alice = await register('alice-laptop');
    bob = await register('bob-laptop');
    notes = `USER_PRIVATE/${alice.userId}/notes`;
    keyring = MemoryDocKeyring.create();
    aliceCipher = cipherFor(alice, notes, keyring);
  });

  it('stores the owner’s signed envelope and hands it back byte for byte', async () => {
    const mux = await openMux(alice.key);
    expect(await mux.subscribe(notes)).toMatchObject({ access: 'read-write' });
    firstEnvelope = aliceCipher.seal(update('title', 'secret plans'));
    expect(await mux.write(notes, firstEnvelope)).toMatchObject({ type: 'ack', seq: 1 });
    mux.close();
    const log = await readLog(alice, notes);
    expect(log).toEqual([{ seq: 1, envelope: firstEnvelope }]);
    const doc = new Y.Doc();
    Y.applyUpdate(doc, aliceCipher.open(log[0]?.envelope as Uint8Array));
    expect(doc.getMap('data').get('title')).toBe('secret plans');
  });

  it('refuses envelopes it cannot attribute to the owner, and keeps the log as it was', async () => {
    const before = await readLog(alice, notes);
    const mux = await openMux(alice.key);
    await mux.subscribe(notes);
    const stranger = { ...alice, identity: deriveIdentity(generateRootSeed()) };
    const cases: Array<[string, Uint8Array, string, RegExp]> = [
      [
        'signed by a key nobody registered',
        cipherFor(stranger, notes, keyring).seal(update('x', '1')),
        'Forbidden',
        /not registered for user_/,
      ],
      [
        'signed by another user’s registered key',
        cipherFor(bob, notes, keyring, alice.userId).seal(update('x', '2')),
        'Forbidden',
        /not registered for user_/,
      ],
      [
        'naming another user as its author',
        cipherFor(alice, notes, keyring, bob.userId).seal(update('x', '3')),
        'Forbidden',
        /names author user_/,
      ],
      [
        'replayed from another document',
        cipherFor(alice, `USER_PRIVATE/${alice.userId}/diary`, keyring).seal(update('x', '4')),
        'Forbidden',
        /sealed for another document/,
      ],
      ['that is no envelope at all', new Uint8Array(300).fill(7), 'BadRequest', /malformed envelope/],
    ];
    for (const [what, envelope, kind, message] of cases) {
      const answer = await mux.write(notes, envelope);
      expect(answer, what).toMatchObject({ type: 'error', kind });
      expect(answer.type === 'error' ? answer.message : '', what).toMatch(message);
    }
    // An envelope whose signature no longer verifies: one flipped ciphertext bit. Counted from
    // the end (the 64-byte signature follows the ciphertext), so the bit is in the ciphertext
    // whatever the header's length; a flip in the header's user id could make it malformed.
    const tampered = aliceCipher.seal(update('x', '5'));
    const inCiphertext = tampered.length - 64 - 8;
    tampered[inCiphertext] = (tampered[inCiphertext] as number) ^ 1;
    expect(await mux.write(notes, tampered)).toMatchObject({ type: 'error', kind: 'Forbidden' });
    // A snapshot is checked the same way.
    const foreignSnapshot = cipherFor(bob, notes, keyring).sealSnapshot(update('x', '6'));
    expect(await mux.write(notes, foreignSnapshot, 1)).toMatchObject({ type: 'error', kind: 'Forbidden' });
    mux.close();
    expect(await readLog(alice, notes)).toEqual(before);
  });

  it('keeps other users out of the document altogether', async () => {
    const mux = await openMux(bob.key);
    // Hidden from Bob: his subscription waits (and may not write), exactly as for an absent one.
    expect(await mux.subscribe(notes)).toMatchObject({ type: 'permission', access: 'waiting' });
    const answer = await mux.write(notes, cipherFor(bob, notes, keyring).seal(update('x', 'y')));
    expect(answer).toMatchObject({ type: 'error', kind: 'BadRequest' }); // not subscribed
    mux.close();
  });

  it('refuses a user who registered no signing key', async () => {
    const plain = await api('POST', '/keys', { body: { device_name: 'no-keys' } });
    const device: Device = { key: plain.json.key, userId: plain.json.user_id, identity: alice.identity };
    const doc = `USER_PRIVATE/${device.userId}/notes`;
    const mux = await openMux(device.key);
    await mux.subscribe(doc);
    const answer = await mux.write(
      doc,
      cipherFor(device, doc, MemoryDocKeyring.create()).seal(update('a', 'b')),
    );
    expect(answer).toMatchObject({ type: 'error', kind: 'Forbidden' });
    expect(answer.type === 'error' ? answer.message : '').toMatch(/no signing key is registered/);
    mux.close();
  });
});

describe('encrypted blobs', () => {
  let owner: Device;
  let writer: Device;
  let reader: Device;
  let outsider: Device;
  const blobId = 'shared-plan';
  const name = `blob/${blobId}`;
  let ownerKeys: MemoryDocKeyring;
  let firstList: Uint8Array;

  beforeAll(async () => {
    owner = await register('owner');
    writer = await register('writer');
    reader = await register('reader');
    outsider = await register('outsider');
    ownerKeys = MemoryDocKeyring.create();
    // Created on the encrypted channel, so the relay marks it encrypted.
    const mux = await openMux(owner.key);
    expect(await mux.subscribe(name)).toMatchObject({ access: 'read-write' });
    const created = await mux.write(name, cipherFor(owner, name, ownerKeys).seal(update('v', '0')));
    expect(created).toMatchObject({ type: 'ack', seq: 1 });
    mux.close();
    for (const [who, level] of [
      [writer, 'read_write'],
      [reader, 'read_only'],
    ] as const) {
      const shared = await api('POST', `/share/${enc(blobId)}`, {
        key: owner.key,
        body: { user_id: who.userId, access_level: level },
      });
      expect(shared.status).toBe(200);
    }
    // The owner-signed member list: who writes, and under which key.
    firstList = await publishMembers(owner, blobId, undefined, ownerKeys.current(), [
      { device: writer, level: 'read_write' },
      { device: reader, level: 'read_only' },
    ]);
  });

  it('marks the blob encrypted and refuses the plaintext channel for it', async () => {
    const meta = await api('GET', `/blob/${enc(blobId)}/meta`, { key: owner.key });
    expect(meta.json).toMatchObject({ blob_id: blobId, owner: owner.userId, encrypted: true });
    const ws = new WebSocket(`${t.wsUrl}/sync?key=${writer.key}`);
    await new Promise((resolve) => ws.once('open', resolve));
    const answer = new Promise<Message>((resolve) =>
      ws.on('message', (data: Buffer) => resolve(decodeMuxFrame(new Uint8Array(data)).message)),
    );
    ws.send(encodeMuxFrame(name, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }));
    expect(await answer).toMatchObject({ type: 'error', kind: 'BadRequest' });
    ws.close();
    // The y-websocket endpoint refuses it at the upgrade.
    const single = new WebSocket(`${t.wsUrl}/sync/${enc(name)}?key=${writer.key}`);
    const status = await new Promise<number>((resolve) => {
      single.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      single.on('error', () => undefined);
    });
    expect(status).toBe(400);
  });

  it('refuses the encrypted channel for a plaintext blob', async () => {
    const put = await api('PUT', '/blob/plain-notes', { key: owner.key, body: 'hello' });
    expect(put.json).toMatchObject({ encrypted: false });
    const mux = await openMux(owner.key);
    expect(await mux.subscribe('blob/plain-notes')).toMatchObject({ type: 'error', kind: 'BadRequest' });
    mux.close();
    // A PUT can create a blob encrypted, for sealed raw bytes.
    const sealed = await api('PUT', '/blob/sealed-bytes', {
      key: owner.key,
      body: new Uint8Array([1, 2, 3]),
      headers: { 'x-scopesync-encrypted': '1' },
    });
    expect(sealed.json).toMatchObject({ encrypted: true });
  });

  it('accepts a read_write sharee’s envelope and refuses a read_only sharee’s', async () => {
    const writerMux = await openMux(writer.key);
    expect(await writerMux.subscribe(name)).toMatchObject({ access: 'read-write' });
    const byWriter = cipherFor(writer, name, ownerKeys).seal(update('v', 'writer'));
    expect(await writerMux.write(name, byWriter)).toMatchObject({ type: 'ack', seq: 2 });
    // Even a sharee may not pass off the owner's envelope as its own.
    const ownersAgain = cipherFor(owner, name, ownerKeys).seal(update('v', 'relayed'));
    expect(await writerMux.write(name, ownersAgain)).toMatchObject({ type: 'error', kind: 'Forbidden' });
    writerMux.close();

    const before = await readLog(owner, name);
    const readerMux = await openMux(reader.key);
    expect(await readerMux.subscribe(name)).toMatchObject({ access: 'read' });
    const byReader = cipherFor(reader, name, ownerKeys).seal(update('v', 'reader'));
    expect(await readerMux.write(name, byReader)).toMatchObject({ type: 'error', kind: 'Forbidden' });
    readerMux.close();

    // An outsider is answered as about an absent blob it could create (docs/security.md,
    // "Existence"); its envelope ends the subscription and is never stored.
    const outsiderMux = await openMux(outsider.key);
    expect(await outsiderMux.subscribe(name)).toMatchObject({ access: 'read-write' });
    const byOutsider = cipherFor(outsider, name, ownerKeys).seal(update('v', 'outsider'));
    expect(await outsiderMux.write(name, byOutsider)).toMatchObject({ type: 'error', kind: 'BadRequest' });
    outsiderMux.close();
    expect(await readLog(owner, name)).toEqual(before);
  });

  it('refuses envelopes under an older key after the owner rotates it with a snapshot', async () => {
    // The writer still holds only the first key.
    const writerKeys = new MemoryDocKeyring(ownerKeys.keys());
    const ownerMux = await openMux(owner.key);
    await ownerMux.subscribe(name);
    const head = (await readLog(owner, name)).at(-1)?.seq as number;
    const rotated = ownerKeys.rotate();
    expect(rotated.epoch).toBe(2);
    await publishMembers(owner, blobId, firstList, rotated, [
      { device: writer, level: 'read_write' },
      { device: reader, level: 'read_only' },
    ]);
    const snapshot = cipherFor(owner, name, ownerKeys).sealSnapshot(update('v', 'rotated'));
    expect(await ownerMux.write(name, snapshot, head)).toMatchObject({ type: 'ack', seq: head });
    ownerMux.close();
    const afterRotation = await readLog(owner, name);
    expect(afterRotation).toEqual([{ seq: head, envelope: snapshot }]);

    const writerMux = await openMux(writer.key);
    await writerMux.subscribe(name, head);
    const stale = await writerMux.write(
      name,
      cipherFor(writer, name, writerKeys).seal(update('v', 'old key')),
    );
    expect(stale).toMatchObject({ type: 'error', kind: 'KeyRotated' });
    expect(stale.type === 'error' ? stale.message : '').toMatch(/epoch 1, older than the required 2/);
    // Only the owner rotates: a sharee's snapshot under a newer epoch is refused.
    writerKeys.add(rotated);
    const sharerRotation = new MemoryDocKeyring(writerKeys.keys());
    sharerRotation.rotate();
    const takeover = cipherFor(writer, name, sharerRotation).sealSnapshot(update('v', 'mine now'));
    expect(await writerMux.write(name, takeover, head)).toMatchObject({ type: 'error', kind: 'Forbidden' });
    expect(await readLog(owner, name)).toEqual(afterRotation);
    // With the new key, the sharee writes again.
    const fresh = cipherFor(writer, name, writerKeys).seal(update('v', 'new key'));
    expect(await writerMux.write(name, fresh)).toMatchObject({ type: 'ack' });
    writerMux.close();
  });

  it('keeps the minimum epoch across a relay restart', async () => {
    await t.relay.close();
    t = await startTestRelay({ dataDir: t.dataDir });
    relays.push(t);
    {
      const writerMux = await openMux(writer.key);
      await writerMux.subscribe(name, 1000);
      const oldKey = new MemoryDocKeyring(ownerKeys.keys().filter((k) => k.epoch === 1));
      const stale = await writerMux.write(name, cipherFor(writer, name, oldKey).seal(update('v', 'late')));
      expect(stale).toMatchObject({ type: 'error', kind: 'KeyRotated' });
      writerMux.close();
    }
  });
});
