import { describe, expect, it } from 'vitest';
import { useTestRelay } from './support/start-test-relay.ts';
import { grantsRead, type MuxSocket, update, useSyncSockets } from './support/sync-sockets.ts';

/*
 * Narrowing an object's read flag takes effect on live subscriptions before anything written
 * under the new flags is sent: a reader who loses the object learns it (multiplexed: a
 * permission that no longer grants reading; single-doc: the socket closed with 44xx) and never
 * receives the value written together with the narrowing, nor anything after it.
 */

const t = useTestRelay();
const SECRET = 'SECRET-DRAFT';
const LATER = 'LATER-EDIT';

const { mux, single } = useSyncSockets(t);

/** Alice's USER_PUBLIC object `key`, readable by everyone (read 2), holding a public value. */
async function publicObject(owner: { userId: string; key: string }, key: string): Promise<string> {
  const created = await t.api('POST', `/userdata/${owner.userId}/USER_PUBLIC/${key}`, {
    key: owner.key,
    body: { value: { text: 'public' }, read: 2 },
  });
  expect(created.status).toBe(200);
  return `USER_PUBLIC/${owner.userId}/${key}`;
}

/** A reader subscribed to `doc` on the multiplexed endpoint, reading it, with its fence ready. */
async function reader(key: string, doc: string): Promise<MuxSocket> {
  const socket = await mux(key);
  await socket.prepareFence();
  expect((await socket.subscribe(doc)).access).toBe('read');
  return socket;
}

/** After the fence: the reader was told it lost `doc` and received nothing carrying `texts`. */
async function expectCutOff(socket: MuxSocket, doc: string, ...texts: string[]): Promise<void> {
  await socket.fence();
  const last = socket.lastPermission(doc);
  expect(grantsRead(last?.access), `last permission for ${doc}: ${last?.access}`).toBe(false);
  for (const text of texts) expect(socket.framesCarrying(text), `frames carrying ${text}`).toEqual([]);
}

describe('an owner narrowing over the multiplexed socket (subscribe flags + tracked update)', () => {
  it('never sends the value written with the narrowing to a reader it removes (5 rounds)', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const leaks: string[] = [];
    for (let round = 0; round < 5; round++) {
      const doc = await publicObject(alice, `post-${round}`);
      const bobSocket = await reader(bob.key, doc);
      const aliceSocket = await mux(alice.key);
      // What `userData.set(…, {read: 1})` sends: subscribe at read 1 and the value at once.
      aliceSocket.send(doc, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0, read: 1 });
      expect((await aliceSocket.write(doc, update('text', `${SECRET}-${round}`))).type).toBe('ack');
      expect((await aliceSocket.write(doc, update('more', `${LATER}-${round}`))).type).toBe('ack');
      await bobSocket.fence();
      const last = bobSocket.lastPermission(doc);
      if (grantsRead(last?.access)) leaks.push(`round ${round}: Bob still has ${last?.access}`);
      for (const text of [`${SECRET}-${round}`, `${LATER}-${round}`]) {
        const carrying = bobSocket.framesCarrying(text);
        if (carrying.length > 0) leaks.push(`round ${round}: Bob received ${text} in ${carrying.join(', ')}`);
      }
      // Over HTTP too, the draft is now hidden from Bob.
      const read = await t.api('GET', `/userdata/${alice.userId}/USER_PUBLIC/post-${round}`, {
        key: bob.key,
      });
      expect(read.status).toBe(404);
    }
    expect(leaks).toEqual([]);
  });

  it('closes a single-document reader before the narrowed value reaches it', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const doc = await publicObject(alice, 'single-post');
    const bobClient = single(doc, bob.key);
    await bobClient.synced();
    expect(bobClient.doc.getMap('data').get('text')).toBe('public');

    const aliceSocket = await mux(alice.key);
    aliceSocket.send(doc, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0, read: 1 });
    expect((await aliceSocket.write(doc, update('text', SECRET))).type).toBe('ack');
    expect(await bobClient.closedByRelay()).toBe(4403);
    expect(bobClient.holds(SECRET)).toBe(false);
  });
});

describe('an owner narrowing over HTTP (POST with read 1)', () => {
  it('tells a multiplexed reader before the draft is broadcast, and sends it nothing after', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const doc = await publicObject(alice, 'essay');
    const bobSocket = await reader(bob.key, doc);
    const narrowed = await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/essay`, {
      key: alice.key,
      body: { value: { text: SECRET }, read: 1 },
    });
    expect(narrowed.status).toBe(200);
    expect(narrowed.json.read).toBe(1);
    const later = await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/essay`, {
      key: alice.key,
      body: { value: { text: LATER } },
    });
    expect(later.status).toBe(200);
    await expectCutOff(bobSocket, doc, SECRET, LATER);
  });

  it('closes a single-document reader with 4403 and never gives it the draft', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const doc = await publicObject(alice, 'essay-single');
    const bobClient = single(doc, bob.key);
    await bobClient.synced();
    const narrowed = await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/essay-single`, {
      key: alice.key,
      body: { value: { text: SECRET }, read: 1 },
    });
    expect(narrowed.status).toBe(200);
    expect(await bobClient.closedByRelay()).toBe(4403);
    expect(bobClient.holds(SECRET)).toBe(false);
  });
});

describe('the server runtime narrowing (runtime.set with read 0)', () => {
  it('cuts off a reader of a public SERVER_SCOPE object before the new value is sent', async () => {
    const bob = await t.user('bob');
    const doc = 'SERVER_SCOPE/_/motd';
    await t.relay.runtime.set(doc, { text: 'public' }, { read: 2 });
    const bobSocket = await reader(bob.key, doc);
    await t.relay.runtime.set(doc, { text: SECRET }, { read: 0 });
    await t.relay.runtime.set(doc, { text: LATER });
    await expectCutOff(bobSocket, doc, SECRET, LATER);
  });

  it('cuts off a reader of a user’s object when the runtime makes it owner-read', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const doc = await publicObject(alice, 'moderated');
    const bobSocket = await reader(bob.key, doc);
    await t.relay.runtime.set(doc, { text: SECRET }, { read: 1 });
    await t.relay.runtime.set(doc, { text: LATER });
    await expectCutOff(bobSocket, doc, SECRET, LATER);
  });
});
