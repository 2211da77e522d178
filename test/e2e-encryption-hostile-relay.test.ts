import { join } from 'node:path';
import type { DocHandle, TamperEvent } from '@scopesync/client';
import type { Message } from '@scopesync/core';
import {
  countersignIdentityRotation,
  createDocKey,
  deriveIdentity,
  exportRecoveryPhrase,
  generateRootSeed,
  type Identity,
  readEnvelopeHeader,
  ready,
  sealEnvelope,
  sealGrant,
  signIdentityRotation,
} from '@scopesync/crypto';
import { SqliteDocStore } from '@scopesync/store-sqlite';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as Y from 'yjs';
import {
  appendAcked as append,
  cleanUp,
  type Device,
  marker,
  openDevice,
  rawSend,
  type ScannedRelay,
  startScannedRelay,
  docText as text,
} from './e2e-encryption-harness.ts';
import { type HostileRelay, jsonOf, startHostileRelay, withJson } from './support/hostile-relay.ts';

/*
 * Attacks 1–5, 6 (a substitution posing as an identity rotation) and 8 (AD) of issue 17, each played by a hostile relay: a proxy between real
 * clients and a real relay (SQLite, libsodium, fake-indexeddb) that substitutes keys, plants
 * grants, forges writers and members, promotes a reader, and drops, reorders, replays or rolls
 * back envelopes. Before the trust layer (pinned keys, the owner-signed member list, per-author
 * history, signed heads, kind in the AD) each of these went through unnoticed.
 */

const hostiles: HostileRelay[] = [];
afterEach(async () => {
  await cleanUp();
  for (const h of hostiles.splice(0)) await h.close();
});

interface Member extends Device {
  readonly apiKey: string;
  readonly userId: string;
  readonly identity: Identity;
  readonly phrase: string;
  readonly tamper: TamperEvent[];
  readonly errors: string[];
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
/** A real relay and a hostile proxy in front of it: clients only ever talk to the proxy. */
async function setUp(): Promise<{ relay: ScannedRelay; hostile: HostileRelay }> {
  await ready();
  const relay = await startScannedRelay();
  const hostile = await startHostileRelay(relay.url);
  hostiles.push(hostile);
  return { relay, hostile };
}

async function member(relay: ScannedRelay, hostile: HostileRelay, name: string): Promise<Member> {
  const { key, userId } = await relay.user(name);
  const seed = generateRootSeed();
  const phrase = await exportRecoveryPhrase(seed);
  const device = await openDevice(hostile.url, { apiKey: key, recoveryPhrase: phrase });
  await device.client.encryption.ready();
  const tamper: TamperEvent[] = [];
  const errors: string[] = [];
  device.client.on('tamper', (event) => tamper.push(event));
  return { ...device, apiKey: key, userId, identity: deriveIdentity(seed), phrase, tamper, errors };
}

function open(m: Member, blob: string): DocHandle {
  const handle = m.client.blobs.open(blob, { encrypted: true });
  handle.on('error', (error) => m.errors.push(`${error.kind}: ${error.message}`));
  return handle;
}

/** The relay's stored log of a doc (ciphertext), read from its SQLite files. */
async function relayLog(relay: ScannedRelay, docName: string): Promise<Uint8Array[]> {
  const docs = new SqliteDocStore({ path: join(relay.dataDir, 'docs.sqlite') });
  try {
    return (await docs.load(docName)).map((e) => e.data);
  } finally {
    await docs.close();
  }
}

/** Public keys of an identity as the relay's JSON answers carry them. */
function keysJson(userId: string, identity: Identity): Record<string, string> {
  return { user_id: userId, sign_pk: b64(identity.signPublicKey), box_pk: b64(identity.boxPublicKey) };
}

/** An enc-entries message with one forged entry appended at a seq past everything. */
function withInjected(message: Message, envelope: Uint8Array, seq = 1_000_000): Message {
  if (message.type !== 'enc-entries') return message;
  return {
    ...message,
    headSeq: Math.max(message.headSeq, seq),
    entries: [...message.entries, { seq, envelope }],
  };
}

/** A Yjs update inserting `words` into a doc of its own. */
function insertUpdate(words: string): Uint8Array {
  const doc = new Y.Doc();
  doc.getText('t').insert(0, words);
  return Y.encodeStateAsUpdate(doc);
}

describe('attack 1: substituted public keys', () => {
  it('a key the relay swaps after first use is a key-changed event and a KeyChanged error, never a silent seal', async () => {
    const { relay, hostile } = await setUp();
    const ada = await member(relay, hostile, 'ada');
    const bob = await member(relay, hostile, 'bob');
    const eve = deriveIdentity(generateRootSeed()); // the relay's own keys
    const a = open(ada, 'first');
    await append(a, 'hello');
    await ada.client.blobs.share('first', bob.userId, 'read_write'); // pins bob's real keys

    const changes: string[] = [];
    ada.client.on('key-changed', (event) => changes.push(event.userId));
    const grantsTo = new Set<string>();
    hostile.hooks.http = (request, answer) => {
      if (request.method === 'GET' && request.path.startsWith(`/users/${bob.userId}/keys`)) {
        return withJson(answer, keysJson(bob.userId, eve));
      }
      const put = /^\/blob\/([^/]+)\/keys\/(user_[0-9a-f]+)/.exec(request.path);
      if (request.method === 'PUT' && put) grantsTo.add(`${put[1]}:${put[2]}`);
      return answer;
    };
    const b2 = open(ada, 'second');
    await append(b2, 'more');
    await expect(ada.client.blobs.share('second', bob.userId, 'read_write')).rejects.toMatchObject({
      kind: 'KeyChanged',
    });
    expect(changes).toEqual([bob.userId]);
    // Nothing was sealed to anyone for bob: no grant went out.
    expect(grantsTo.has(`second:${bob.userId}`)).toBe(false);
    // The pin survives a restart of the app: the same store still refuses.
    await ada.client.close();
    const again = await openDevice(
      hostile.url,
      { apiKey: ada.apiKey, recoveryPhrase: ada.phrase },
      ada.indexedDB,
    );
    await expect(again.client.trust.keysOf(bob.userId)).rejects.toMatchObject({ kind: 'KeyChanged' });
    // Accepting is the app's explicit decision (after comparing safety numbers).
    const accepted = await again.client.trust.accept(bob.userId);
    expect(accepted.boxPublicKey).toEqual(eve.boxPublicKey);
  });

  it('a substitution dressed up as an identity rotation is refused; only a rotation the pinned key signed is followed', async () => {
    const { relay, hostile } = await setUp();
    const ada = await member(relay, hostile, 'ada');
    const bob = await member(relay, hostile, 'bob');
    const eve = deriveIdentity(generateRootSeed()); // the relay's own keys
    const invented = deriveIdentity(generateRootSeed()); // an "earlier key" the relay makes up
    const a = open(ada, 'first');
    await append(a, 'hello');
    await ada.client.blobs.share('first', bob.userId, 'read_write'); // pins bob's real keys
    const changes: [string, boolean][] = [];
    ada.client.on('key-changed', (event) => changes.push([event.userId, event.rotated]));

    // Statements the relay can make: a chain from a key of its own to eve (valid signatures, but
    // not starting at the pinned key), and one "from bob's key" it could not sign.
    const statement = (from: Identity, to: Identity, signer: Identity) => {
      const base = { relayId: 'relay', userId: bob.userId, challenge: 'c'.repeat(43) };
      return {
        sign_pk: b64(from.signPublicKey),
        next_sign_pk: b64(to.signPublicKey),
        next_box_pk: b64(to.boxPublicKey),
        relay_id: base.relayId,
        challenge: base.challenge,
        signature: b64(signIdentityRotation(base, signer, to)),
        countersignature: b64(countersignIdentityRotation(base, from, to)),
        rotated_at: 1,
      };
    };
    for (const rotations of [[statement(invented, eve, invented)], [statement(bob.identity, eve, eve)]]) {
      hostile.hooks.http = (request, answer) =>
        request.method === 'GET' && request.path.startsWith(`/users/${bob.userId}/keys`)
          ? withJson(answer, { ...keysJson(bob.userId, eve), rotations })
          : answer;
      const blob = `fake-${rotations.length}-${changes.length}`;
      await append(open(ada, blob), 'x');
      await expect(ada.client.blobs.share(blob, bob.userId, 'read_write')).rejects.toMatchObject({
        kind: 'KeyChanged',
      });
    }
    expect(changes).toEqual([
      [bob.userId, false],
      [bob.userId, false],
    ]);

    // Bob really rotates (through the same relay, honest again): that one is followed.
    hostile.hooks.http = undefined;
    await bob.client.encryption.rotateIdentity();
    await append(open(ada, 'after'), 'y');
    await ada.client.blobs.share('after', bob.userId, 'read_write');
    expect(changes.at(-1)).toEqual([bob.userId, true]);
    expect((await ada.client.trust.keysOf(bob.userId)).signPublicKey).toEqual(
      (await bob.client.encryption.publicKeys()).signPublicKey,
    );
  });

  it('safety numbers match when the keys are real and differ when the relay substituted one on first use', async () => {
    const { relay, hostile } = await setUp();
    const ada = await member(relay, hostile, 'ada');
    const bob = await member(relay, hostile, 'bob');
    const carol = await member(relay, hostile, 'carol');
    const honestA = await ada.client.trust.safetyNumber(bob.userId);
    const honestB = await bob.client.trust.safetyNumber(ada.userId);
    expect(honestA).toMatch(/^\d{5}( \d{5}){5}$/);
    expect(honestA).toBe(honestB);

    const eve = deriveIdentity(generateRootSeed());
    hostile.hooks.http = (request, answer) =>
      request.method === 'GET' &&
      request.path.startsWith(`/users/${carol.userId}/keys`) &&
      request.apiKey === ada.apiKey
        ? withJson(answer, keysJson(carol.userId, eve))
        : answer;
    // Ada has never seen carol: she pins the relay's keys, but the numbers the two read out differ.
    expect(await ada.client.trust.safetyNumber(carol.userId)).not.toBe(
      await carol.client.trust.safetyNumber(ada.userId),
    );
  });
});

describe('attack 2: planted keys, grants and writers', () => {
  it('a self-signed grant at a huge epoch, the owner key swapped, and a forged writer: the sharee seals on under the real key and applies nothing forged', async () => {
    const { relay, hostile } = await setUp();
    const ada = await member(relay, hostile, 'ada');
    const bob = await member(relay, hostile, 'bob');
    const eve = deriveIdentity(generateRootSeed());
    const eveId = 'user_eeeeeeeeeeeeeeee';
    const a = open(ada, 'plans');
    await append(a, 'ada ');
    await ada.client.blobs.share('plans', bob.userId, 'read_write');
    const b = open(bob, 'plans');
    await b.whenSynced;
    expect(text(b)).toBe('ada ');

    // The relay's own document key, "granted" by itself posing as the owner, at epoch 99.
    const planted = createDocKey(99);
    const grant = sealGrant({
      docKey: planted,
      recipientBoxPublicKey: bob.identity.boxPublicKey,
      grantor: eve,
      blobId: 'plans',
      level: 'read_write',
    });
    const forged = sealEnvelope({
      docName: 'blob/plans',
      key: planted,
      author: { ...eve, userId: eveId },
      plaintext: insertUpdate('FORGED'),
      chain: { stream: '00000000000000ee', counter: 1, previous: new Uint8Array(32) },
    });
    hostile.hooks.http = (request, answer) => {
      if (request.method !== 'GET') return answer;
      if (request.path.startsWith(`/users/${ada.userId}/keys`))
        return withJson(answer, keysJson(ada.userId, eve));
      if (request.path.startsWith(`/users/${eveId}/keys`))
        return withJson({ ...answer, status: 200 }, keysJson(eveId, eve));
      if (request.path.startsWith('/blob/plans/keys/me')) {
        const body = jsonOf(answer);
        const grants = [
          ...(body.grants as unknown[]),
          { epoch: 99, sealed_key: b64(grant.sealedKey), grant: b64(grant.grant) },
        ];
        return withJson(answer, { ...body, grants });
      }
      if (request.path.startsWith('/share/plans')) {
        const body = jsonOf(answer);
        return withJson(answer, {
          ...body,
          shares: [...(body.shares as unknown[]), { user_id: eveId, access_level: 'read_write' }],
        });
      }
      return answer;
    };
    let injected = false;
    hostile.hooks.frame = (docName, message, apiKey) => {
      if (apiKey !== bob.apiKey || docName !== 'blob/plans' || message.type !== 'enc-entries' || injected)
        return [message];
      if (message.entries.length === 0) return [message];
      injected = true;
      return [withInjected(message, forged)];
    };
    await append(a, 'more ');
    await vi.waitFor(() => expect(injected).toBe(true));
    await vi.waitFor(() => expect(text(b)).toBe('ada more '));
    await vi.waitFor(() =>
      expect(bob.errors.some((e) => e.startsWith('KeyChanged') || e.startsWith('Forbidden'))).toBe(true),
    );
    expect(text(b)).not.toContain('FORGED');

    // Bob's next edit is sealed under the real key (epoch 1), which ada reads; never epoch 99.
    hostile.hooks.http = undefined;
    await append(b, 'bob');
    await vi.waitFor(() => expect(text(a)).toBe('ada more bob'));
    const epochs = (await relayLog(relay, 'blob/plans')).map((e) => readEnvelopeHeader(e).epoch);
    expect(epochs.every((epoch) => epoch === 1)).toBe(true);
  });

  it('after a revocation the new key is sealed only to the members the owner signed, not to whom the relay lists', async () => {
    const { relay, hostile } = await setUp();
    const ada = await member(relay, hostile, 'ada');
    const bob = await member(relay, hostile, 'bob');
    const cy = await member(relay, hostile, 'cy');
    const a = open(ada, 'board');
    await append(a, 'x');
    await ada.client.blobs.share('board', bob.userId, 'read_write');
    await ada.client.blobs.share('board', cy.userId, 'read_only');
    const grantsAt2: string[] = [];
    hostile.hooks.http = (request, answer) => {
      if (request.method === 'GET' && request.path.startsWith('/share/board')) {
        // The relay pretends the revoked cy is still a member.
        return withJson(answer, {
          blob_id: 'board',
          shares: [
            { user_id: bob.userId, access_level: 'read_write' },
            { user_id: cy.userId, access_level: 'read_only' },
          ],
        });
      }
      const put = /^\/blob\/board\/keys\/(user_[0-9a-f]+)/.exec(request.path);
      if (request.method === 'PUT' && put) grantsAt2.push(put[1] as string);
      return answer;
    };
    await ada.client.blobs.revoke('board', cy.userId);
    expect(grantsAt2.sort()).toEqual([ada.userId, bob.userId].sort());
  });
});

describe('attack 2/5: an old member list served after a revocation', () => {
  it('a member who saw the newer list refuses the older one the relay serves instead', async () => {
    const { relay, hostile } = await setUp();
    const ada = await member(relay, hostile, 'ada');
    const bob = await member(relay, hostile, 'bob');
    const cy = await member(relay, hostile, 'cy');
    const a = open(ada, 'room');
    await append(a, 'one ');
    await ada.client.blobs.share('room', bob.userId, 'read_write');
    await ada.client.blobs.share('room', cy.userId, 'read_write');
    const b = open(bob, 'room');
    await b.whenSynced;
    // The relay remembers the list as bob first saw it (cy still a member, the first key).
    const seen = (await relay.api('GET', '/blob/room/members', { key: bob.apiKey })).json as {
      lists: string[];
    };
    await ada.client.blobs.revoke('room', cy.userId);
    hostile.hooks.http = (request, answer) =>
      request.method === 'GET' &&
      request.path.startsWith('/blob/room/members') &&
      request.apiKey === bob.apiKey
        ? withJson(answer, { blob_id: 'room', lists: seen.lists.slice(0, 2) })
        : answer;
    // The rotation's snapshot names a key bob cannot vouch for without the newer list.
    await append(a, 'two');
    await vi.waitFor(() => expect(bob.tamper.map((t) => t.kind)).toContain('rollback'));
    expect(text(b)).not.toContain('two');
  });
});

describe('attack 3: a reader promoted to writer', () => {
  it('a read_only member’s envelope is refused by the other members whatever the relay’s share list says', async () => {
    const { relay, hostile } = await setUp();
    const ada = await member(relay, hostile, 'ada');
    const bob = await member(relay, hostile, 'bob');
    const cy = await member(relay, hostile, 'cy');
    const a = open(ada, 'plans');
    await append(a, 'ada ');
    await ada.client.blobs.share('plans', bob.userId, 'read_write');
    await ada.client.blobs.share('plans', cy.userId, 'read_only');
    const b = open(bob, 'plans');
    await b.whenSynced;
    const c = open(cy, 'plans');
    await c.whenSynced;
    // Cy's modified client seals with the key it was granted; the relay colludes.
    const fromCy = await (await cy.client.encryption.docKeys('blob/plans')).seal(insertUpdate('READER'));
    hostile.hooks.http = (request, answer) =>
      request.method === 'GET' && request.path.startsWith('/share/plans')
        ? withJson(answer, {
            blob_id: 'plans',
            shares: [
              { user_id: bob.userId, access_level: 'read_write' },
              { user_id: cy.userId, access_level: 'read_write' },
            ],
          })
        : answer;
    let injected = false;
    hostile.hooks.frame = (docName, message, apiKey) => {
      if (apiKey !== bob.apiKey || docName !== 'blob/plans' || injected || message.type !== 'enc-entries')
        return [message];
      if (message.entries.length === 0) return [message];
      injected = true;
      return [withInjected(message, fromCy)];
    };
    await append(a, 'more');
    await vi.waitFor(() => expect(text(b)).toBe('ada more'));
    await vi.waitFor(() => expect(bob.errors.some((e) => /not allowed to write/.test(e))).toBe(true));
    expect(text(b)).not.toContain('READER');
  });
});

describe('attack 4: a read_write member wiping the relay’s copy', () => {
  it('the relay refuses a member’s snapshot and envelopes under a key the owner never listed; members refuse a member’s snapshot', async () => {
    const { relay, hostile } = await setUp();
    const ada = await member(relay, hostile, 'ada');
    const bob = await member(relay, hostile, 'bob');
    const a = open(ada, 'doc');
    await append(a, 'precious');
    await ada.client.blobs.share('doc', bob.userId, 'read_write');
    const b = open(bob, 'doc');
    await b.whenSynced;
    const before = await relayLog(relay, 'blob/doc');
    const bobKeys = await bob.client.encryption.docKeys('blob/doc');
    const current = bobKeys.keyring.current();
    const author = { ...bob.identity, userId: bob.userId };
    // A snapshot under the current epoch but a key id nobody else holds.
    const wipe = sealEnvelope({
      docName: 'blob/doc',
      key: { ...createDocKey(current.epoch) },
      author,
      kind: 'snapshot',
      plaintext: insertUpdate(''),
      commitments: { parent: new Uint8Array(32), clock: [] },
    });
    const head = before.length;
    expect(await rawSend(relay.wsUrl, bob.apiKey, 'blob/doc', wipe, head)).toMatchObject({
      type: 'error',
      kind: 'Forbidden',
    });
    // Even under the real key: only the owner compacts.
    const ownKeySnapshot = await bobKeys.sealSnapshot(insertUpdate(''));
    expect(await rawSend(relay.wsUrl, bob.apiKey, 'blob/doc', ownKeySnapshot, head)).toMatchObject({
      type: 'error',
      kind: 'Forbidden',
    });
    // An update under a self-made epoch.
    const selfMade = sealEnvelope({
      docName: 'blob/doc',
      key: createDocKey(current.epoch + 1),
      author,
      plaintext: insertUpdate('x'),
    });
    expect(await rawSend(relay.wsUrl, bob.apiKey, 'blob/doc', selfMade)).toMatchObject({
      type: 'error',
      kind: 'Forbidden',
    });
    expect(await relayLog(relay, 'blob/doc')).toEqual(before);

    // A hostile relay that accepted bob's snapshot anyway and serves it: ada refuses it.
    let injected = false;
    hostile.hooks.frame = (docName, message, apiKey) => {
      if (apiKey !== ada.apiKey || docName !== 'blob/doc' || injected || message.type !== 'enc-entries')
        return [message];
      if (message.entries.length === 0) return [message];
      injected = true;
      return [withInjected(message, ownKeySnapshot)];
    };
    await append(b, ' and more');
    await vi.waitFor(() => expect(injected).toBe(true));
    await vi.waitFor(() => expect(ada.errors.some((e) => /not allowed to write/.test(e))).toBe(true));
    expect(text(a)).toBe('precious and more');
  });
});

describe('attack 5: dropped, reordered, replayed and rolled-back history', () => {
  /** Ada owns a blob shared read_write with bob, both have it open. */
  async function scene() {
    const { relay, hostile } = await setUp();
    const ada = await member(relay, hostile, 'ada');
    const bob = await member(relay, hostile, 'bob');
    const a = open(ada, 'log');
    await append(a, 'a');
    await ada.client.blobs.share('log', bob.userId, 'read_write');
    const b = open(bob, 'log');
    await b.whenSynced;
    return { hostile, ada, bob, a, b };
  }

  /** Collects bob's entries on their way to ada, one at a time, for the test to deliver as it likes. */
  function captureForAda(hostile: HostileRelay, ada: Member) {
    const held: { seq: number; envelope: Uint8Array }[] = [];
    hostile.hooks.frame = (docName, message, apiKey) => {
      if (apiKey !== ada.apiKey || docName !== 'blob/log' || message.type !== 'enc-entries') return [message];
      held.push(...message.entries);
      return [{ ...message, entries: [] }];
    };
    return held;
  }

  it('a dropped envelope is a gap the reader reports; a reordered one is refused; a replayed one is refused', async () => {
    const { hostile, ada, a, b } = await scene();
    const held = captureForAda(hostile, ada);
    for (const word of ['1', '2', '3', '4']) await append(b, word);
    await vi.waitFor(() => expect(held).toHaveLength(4));
    // The fourth is withheld from ada for good.
    const [e1, e2, e3] = held as [(typeof held)[0], (typeof held)[0], (typeof held)[0]];
    // From now on every enc-entries frame to ada (the answers to her subscribe and fetch after a
    // reconnect) carries exactly what the relay chooses to show her.
    const deliver = (entries: { seq: number; envelope: Uint8Array }[]) => {
      hostile.hooks.frame = (docName, message, apiKey) => {
        if (apiKey !== ada.apiKey || docName !== 'blob/log' || message.type !== 'enc-entries')
          return [message];
        return [{ ...message, headSeq: Math.max(...entries.map((e) => e.seq)), entries }];
      };
    };
    // Dropped: e1, then e3 (e2 never comes).
    deliver([e1, { seq: e3.seq, envelope: e3.envelope }]);
    ada.client.disconnect();
    ada.client.connect();
    await vi.waitFor(() => expect(ada.tamper.map((t) => t.kind)).toContain('gap'));
    expect(text(a)).toContain('1');
    // Reordered: e2 after e3 (under a later seq) is below the mark: refused, never applied.
    deliver([{ seq: 100, envelope: e2.envelope }]);
    ada.client.disconnect();
    ada.client.connect();
    await vi.waitFor(() => expect(ada.tamper.map((t) => t.kind)).toContain('fork'));
    // Replayed: e3 again under a new seq.
    deliver([{ seq: 101, envelope: e3.envelope }]);
    ada.client.disconnect();
    ada.client.connect();
    await vi.waitFor(() => expect(ada.tamper.map((t) => t.kind)).toContain('replay'));
    expect(text(a)).not.toContain('2');
  });

  it('an old view served to a fresh device is caught by the members’ signed heads', async () => {
    const { hostile, ada, bob, a, b } = await scene();
    await append(b, 'b1');
    // The relay remembers the log as it is now, to serve it later as if nothing followed.
    let old: Message | undefined;
    hostile.hooks.frame = (docName, message) => {
      if (docName === 'blob/log' && message.type === 'enc-entries' && message.entries.length > 0)
        old ??= message;
      return [message];
    };
    const probe = await openDevice(hostile.url, { apiKey: bob.apiKey, recoveryPhrase: bob.phrase });
    const p = probe.client.blobs.open('log', { encrypted: true });
    await p.whenSynced;
    await probe.client.close();
    expect(old).toBeDefined();
    await append(b, 'b2');
    await append(a, 'a2');
    await vi.waitFor(() => expect(text(a)).toBe('ab1b2a2'));
    // Heads are exchanged after each catch-up: make sure ada's and bob's are published.
    ada.client.disconnect();
    ada.client.connect();
    await a.whenSynced;
    // A fresh device of bob's gets the old log only.
    hostile.hooks.frame = (docName, message) =>
      docName === 'blob/log' && message.type === 'enc-entries' && old ? [old] : [message];
    const fresh = await openDevice(hostile.url, { apiKey: bob.apiKey, recoveryPhrase: bob.phrase });
    const tamper: TamperEvent[] = [];
    fresh.client.on('tamper', (event) => tamper.push(event));
    const f = fresh.client.blobs.open('log', { encrypted: true });
    await f.whenSynced;
    expect(f.doc.getText('t').toString()).toBe('ab1');
    await vi.waitFor(() => expect(tamper.map((t) => t.kind)).toContain('withheld'));
  });
});

describe('attack 8: kind and version bound into the AD', () => {
  it('a log entry served as raw blob bytes, raw bytes served as a log entry, or an old version served as new are refused', async () => {
    const { relay, hostile } = await setUp();
    const ada = await member(relay, hostile, 'ada');
    const bob = await member(relay, hostile, 'bob');
    const secret = marker('raw');
    const first = await ada.client.blobs.put('scan', new TextEncoder().encode(`${secret}-v1`), {
      encrypted: true,
    });
    await ada.client.blobs.put('scan', new TextEncoder().encode(`${secret}-v2`), {
      encrypted: true,
      ifVersion: first.version,
    });
    await ada.client.blobs.share('scan', bob.userId, 'read_only');
    expect(new TextDecoder().decode((await bob.client.blobs.get('scan', { encrypted: true })).bytes)).toBe(
      `${secret}-v2`,
    );

    // A Yjs log entry of the same blob (same key) served as its raw bytes.
    const keys = await ada.client.encryption.docKeys('blob/scan');
    const logEntry = await keys.seal(insertUpdate('not the scan'));
    const raw = await keys.sealRaw(new TextEncoder().encode('x'), 0);
    let serve: Uint8Array | undefined = logEntry;
    hostile.hooks.http = (request, answer) =>
      request.method === 'GET' &&
      request.path.startsWith('/blob/scan?') === false &&
      request.path === '/blob/scan' &&
      serve
        ? { ...answer, body: serve }
        : answer;
    await expect(bob.client.blobs.get('scan', { encrypted: true })).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    // Flipping the kind byte to pass it off as raw breaks the signature (and the AD).
    const flipped = logEntry.slice();
    flipped[1] = 3;
    serve = flipped;
    await expect(bob.client.blobs.get('scan', { encrypted: true })).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    // Version 1's bytes served as the current version.
    serve = undefined;
    const v1 = await keys.sealRaw(new TextEncoder().encode('old'), first.version);
    serve = v1;
    await expect(bob.client.blobs.get('scan', { encrypted: true })).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    expect(bob.tamper.map((t) => t.kind)).toContain('rollback');
    // Raw bytes as a log entry of the blob's document.
    await expect(keys.openFromRelay(raw)).rejects.toMatchObject({ kind: 'Forbidden' });
  });
});
