import {
  DEFAULT_WIRE_LIMITS,
  decodeMuxFrame,
  encodeMuxFrame,
  Level,
  type Message,
  type SubscribeMode,
  type WireLimits,
} from '@scopesync/core';
import {
  createDocCipher,
  deriveIdentity,
  type Identity,
  MemoryDocKeyring,
  ready,
  signKeyProof,
} from '@scopesync/crypto';
import type { SeededRandom } from '@scopesync/testing';
import { expect } from 'vitest';
import WebSocket from 'ws';
import { type FuzzBackend, type FuzzRelay, type StoredRows, startFuzzRelay } from './fuzz-backend.ts';
import { call, enc } from './http-client.ts';
import type { TestRelay } from './start-test-relay.ts';
import { yjsUpdate } from './ws-fuzz-frames.ts';

// The relay the WebSocket fuzzer attacks, and what it holds before the first frame: alice's
// documents written the way her client writes them, shared with bob, public and server-scope
// documents, the three fuzzing callers, and real envelopes to replay and mutate.

/** The relay's frame limit, small so that oversized frames are cheap to send. */
export const MAX_FRAME = 64 * 1024;
/** The wire limits of the relay, as core's readers check them. */
export const LIMITS: WireLimits = { ...DEFAULT_WIRE_LIMITS, maxFrameBytes: MAX_FRAME };

/** A fuzzing caller: bob (read-only on alice's documents), mallory (a user without rights) or a guest. */
export interface Actor {
  readonly name: 'bob' | 'mallory' | 'guest';
  readonly key: string | undefined;
  readonly userId: string | null;
}

/** What one run fuzzes: the relay, its callers and the documents they may and may not touch. */
export interface Fixture {
  readonly relay: TestRelay;
  /** The relay's stored rows, read raw. */
  readonly stored: StoredRows;
  /** Errors the relay logged: every one is a bug. */
  readonly relayErrors: readonly string[];
  readonly alice: string;
  readonly bob: Actor;
  readonly actors: readonly Actor[];
  /** Documents no fuzzing caller may write: their stored bytes must not change. */
  readonly protectedDocs: readonly string[];
  /** Names valid in the grammar that the fuzzing callers may not create. */
  readonly forbiddenNew: readonly string[];
  readonly encryptedDocs: ReadonlySet<string>;
  /** Envelopes and snapshots to send: real ones (alice's, bob's for many docs) to replay and mutate. */
  readonly envelopes: readonly { readonly docName: string; readonly bytes: Uint8Array }[];
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

async function register(relay: TestRelay, name: string, identity: Identity) {
  const { json: issued } = await call(relay.url, 'POST', '/keys/challenge');
  const answer = await call(relay.url, 'POST', '/keys', {
    body: {
      device_name: name,
      sign_pk: b64(identity.signPublicKey),
      box_pk: b64(identity.boxPublicKey),
      challenge: issued.challenge,
      proof: b64(
        signKeyProof(
          { purpose: 'register', relayId: issued.relay_id, challenge: issued.challenge },
          identity,
        ),
      ),
    },
  });
  expect(answer.status, JSON.stringify(answer.json)).toBe(200);
  return { key: answer.json.key as string, userId: answer.json.user_id as string };
}

/** Sends `message` on a fresh multiplexed socket of `key` after a subscribe, and waits for the answer to it. */
async function muxWrite(
  relay: TestRelay,
  key: string,
  docName: string,
  mode: SubscribeMode,
  message: Message,
) {
  const ws = new WebSocket(`${relay.wsUrl}/sync?key=${key}`);
  const frames: Message[] = [];
  let wake = (): void => undefined;
  ws.on('message', (data: Buffer) => {
    frames.push(decodeMuxFrame(new Uint8Array(data)).message);
    wake();
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const next = async (type: Message['type']): Promise<Message> => {
    for (;;) {
      const found = frames.find((f) => f.type === type || f.type === 'error');
      if (found) return frames.splice(frames.indexOf(found), 1)[0] as Message;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  ws.send(encodeMuxFrame(docName, { type: 'subscribe', mode, sinceSeq: 0 }));
  expect(await next('permission')).toMatchObject({ type: 'permission', access: 'read-write' });
  ws.send(encodeMuxFrame(docName, message));
  expect(await next('ack')).toMatchObject({ type: 'ack' });
  ws.close();
}

/** Starts the relay to fuzz on `backend`, with the small frame limit; the errors it logs go to `relayErrors`. */
export function startRelay(backend: FuzzBackend, relayErrors: string[]): Promise<FuzzRelay> {
  return startFuzzRelay(backend, {
    limits: { sync: { maxFrameBytes: MAX_FRAME } },
    // Warnings (a socket closed after a refused frame…) are expected; errors are bugs.
    log: (level, message, context) => {
      if (level === 'error') relayErrors.push(`${message}: ${String(context?.error ?? '')}`);
    },
  });
}

/**
 * Registers alice and bob on `fuzzed`, writes the documents the fuzzing callers must not change
 * and seals the envelopes they replay: the fixture of one run.
 */
export async function seedRelay(
  r: SeededRandom,
  fuzzed: FuzzRelay,
  relayErrors: readonly string[],
): Promise<Fixture> {
  await ready();
  const relay = fuzzed.relay;
  const aliceId = deriveIdentity(r.bytes(32));
  const bobId = deriveIdentity(r.bytes(32));
  const alice = await register(relay, 'alice', aliceId);
  const bob = await register(relay, 'bob', bobId);
  const mallory = await relay.user('mallory');
  const A = alice.userId;
  const B = bob.userId;

  const notes = `USER_PRIVATE/${A}/notes`;
  const encBlob = 'blob/alice-enc';
  const plainBlob = 'blob/alice-plain';
  const aliceKeys = MemoryDocKeyring.create();
  const envelopes: { docName: string; bytes: Uint8Array }[] = [];
  const seal = (identity: Identity, userId: string, docName: string, snapshot = false) => {
    const cipher = createDocCipher({ identity, docName, keyring: aliceKeys, userId });
    const bytes = snapshot ? cipher.sealSnapshot(yjsUpdate(r)) : cipher.seal(yjsUpdate(r));
    envelopes.push({ docName, bytes });
    return bytes;
  };
  // Alice's encrypted documents, written the way her client writes them.
  for (let i = 0; i < 2; i++) {
    const envelope = seal(aliceId, A, notes);
    await muxWrite(relay, alice.key, notes, 'encrypted', { type: 'enc-append', ref: 1, envelope });
  }
  const blobEnvelope = seal(aliceId, A, encBlob);
  await muxWrite(relay, alice.key, encBlob, 'encrypted', {
    type: 'enc-append',
    ref: 1,
    envelope: blobEnvelope,
  });
  await muxWrite(relay, alice.key, plainBlob, 'plaintext', {
    type: 'tracked-update',
    ref: 1,
    update: yjsUpdate(r),
  });
  for (const blob of ['alice-enc', 'alice-plain']) {
    const shared = await call(relay.url, 'POST', `/share/${enc(blob)}`, {
      key: alice.key,
      body: { user_id: B, access_level: 'read_only' },
    });
    expect(shared.status).toBe(200);
  }
  const post = async (path: string, key: string | undefined, body: unknown) =>
    expect((await call(relay.url, 'POST', path, { key, body })).status).toBe(200);
  await post(`/userdata/${A}/USER_PUBLIC/profile`, alice.key, { value: { name: 'Ada' } });
  await post(`/userdata/${A}/USER_PUBLIC/draft`, alice.key, { value: { t: 1 }, read: 1 });
  const admin = await relay.user('admin', Level.Admin);
  await post('/userdata/_/PUBLIC_READ/rules', admin.key, { value: { rule: 'be nice' } });
  await relay.relay.runtime.set('PUBLIC_READ/_/news', { text: 'hi' }, { read: 2 });
  await relay.relay.runtime.set(
    'SERVER_SCOPE/_/config',
    { secret: 'public but read-only' },
    { read: 2, write: 0 },
  );
  // Documents the fuzzing callers may change: not compared.
  await post('/userdata/_/PUBLIC_RW/board', undefined, { value: { notes: [] } });
  await post(`/userdata/${B}/USER_PUBLIC/own`, bob.key, { value: { mine: true } });

  // Bob's real envelopes: for his own document (valid), and for documents he may not write.
  for (const docName of [`USER_PRIVATE/${B}/diary`, notes, encBlob, plainBlob]) {
    for (let i = 0; i < 3; i++) seal(bobId, B, docName, i === 2);
  }
  seal(bobId, A, notes); // naming alice as its author
  seal(aliceId, A, `USER_PRIVATE/${A}/other`);

  return {
    relay,
    stored: fuzzed.stored,
    relayErrors,
    alice: A,
    bob: { name: 'bob', key: bob.key, userId: B },
    actors: [
      { name: 'bob', key: bob.key, userId: B },
      { name: 'mallory', key: mallory.key, userId: mallory.userId },
      { name: 'guest', key: undefined, userId: null },
    ],
    protectedDocs: [
      notes,
      encBlob,
      plainBlob,
      `USER_PUBLIC/${A}/profile`,
      `USER_PUBLIC/${A}/draft`,
      'PUBLIC_READ/_/news',
      'PUBLIC_READ/_/rules',
      'SERVER_SCOPE/_/config',
    ],
    forbiddenNew: [
      `USER_PRIVATE/${A}/other`,
      `USER_PUBLIC/${A}/new`,
      'PUBLIC_READ/_/new',
      'SERVER_SCOPE/_/new',
      'MOD_DATA/Chat/x',
    ],
    encryptedDocs: new Set([notes, encBlob, `USER_PRIVATE/${B}/diary`]),
    envelopes,
  };
}
