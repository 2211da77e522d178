import { randomUUID } from 'node:crypto';
import { Level } from '@scopesync/core';
import * as encoding from 'lib0/encoding';
import { afterEach, describe, expect, it } from 'vitest';
import { enc, type HttpAnswer } from './support/http-client.ts';
import { type TestUser, useTestRelay } from './support/start-test-relay.ts';
import { carries, EMPTY_STATE_VECTOR, MuxSocket, RawDocSocket, update } from './support/sync-sockets.ts';

/*
 * docs/security.md, "Existence": a request that changes nothing answers the same whether an
 * object the caller may not see exists or not. Each probe runs twice, on a hidden object and
 * on an absent one, and the two answers must be equal (ids replaced by a placeholder).
 */

const t = useTestRelay();
const SECRET = 'SECRET-CONTENT';

const sockets: Array<{ close(): void }> = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

/** Status and body of an HTTP answer, with `ids` replaced by `<id>`. */
function shape(answer: HttpAnswer, ids: string[]): { status: number; body: string } {
  let body = new TextDecoder().decode(answer.bytes);
  for (const id of ids) body = body.split(id).join('<id>');
  return { status: answer.status, body };
}

async function mux(key: string): Promise<MuxSocket> {
  const socket = await MuxSocket.open(t, key);
  sockets.push(socket);
  return socket;
}

/** An owner's plaintext blob holding SECRET, written over the socket. */
async function hiddenBlob(owner: TestUser): Promise<string> {
  const id = `b-${randomUUID()}`;
  const socket = await mux(owner.key);
  await socket.subscribe(`blob/${id}`);
  expect(await socket.write(`blob/${id}`, update('f', SECRET))).toMatchObject({ type: 'ack' });
  return id;
}

/** What a multiplexed subscriber sees of `doc`: the permission, the relay's SyncStep1 and its answer to ours. */
async function probeMux(key: string, doc: string): Promise<unknown> {
  const socket = await mux(key);
  const permission = await socket.subscribe(doc);
  const from = socket.frames.length;
  socket.send(doc, { type: 'sync-step1', stateVector: EMPTY_STATE_VECTOR });
  const step2 = await socket.waitFor(
    'sync-step2',
    (f) => f.doc === doc && f.message.type === 'sync-step2',
    from,
  );
  const seen = socket.frames
    .filter((f) => f.doc === doc)
    .map((f) => ({
      type: f.message.type,
      bytes: Buffer.from(f.bytes).toString('hex').replace(Buffer.from(doc).toString('hex'), ''),
    }));
  return { permission, step2: carries(step2.bytes, SECRET), seen };
}

/** What a single-document client gets: upgraded or refused, and its first frame. */
async function probeSingle(key: string, doc: string): Promise<unknown> {
  let socket: RawDocSocket;
  try {
    socket = await RawDocSocket.open(t, doc, key);
  } catch (error) {
    return { refused: (error as Error).message };
  }
  sockets.push(socket);
  const deadline = Date.now() + 2000;
  while (socket.frames.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return { first: Buffer.from(socket.frames[0] ?? []).toString('hex') };
}

describe('a stranger probing a blob id someone else holds', () => {
  it('gets the same HTTP answers as for an absent id, from every route that changes nothing', async () => {
    const owner = await t.user('owner');
    const stranger = await t.user('stranger');
    const hidden = await hiddenBlob(owner);
    const absent = `b-${randomUUID()}`;
    const probes: Array<[string, (id: string) => string, object]> = [
      ['PUT', (id) => `/blob/${enc(id)}`, { body: 'x', headers: { 'if-match': '999' } }],
      ['GET', (id) => `/blob/${enc(id)}`, {}],
      ['GET', (id) => `/blob/${enc(id)}/meta`, {}],
      ['DELETE', (id) => `/blob/${enc(id)}`, {}],
      ['POST', (id) => `/share/${enc(id)}`, { body: { user_id: owner.userId, access_level: 'read_only' } }],
      ['GET', (id) => `/share/${enc(id)}`, {}],
      ['DELETE', (id) => `/share/${enc(id)}/${owner.userId}`, {}],
    ];
    for (const [method, path, options] of probes) {
      const a = await t.api(method, path(hidden), { key: stranger.key, ...options });
      const b = await t.api(method, path(absent), { key: stranger.key, ...options });
      expect(shape(a, [hidden]), `${method} ${path('<id>')}`).toEqual(shape(b, [absent]));
    }
    // The probes changed nothing: the absent id is still free, the owner's blob intact.
    expect((await t.api('GET', `/blob/${enc(absent)}/meta`, { key: stranger.key })).status).toBe(404);
    expect((await t.api('GET', `/blob/${enc(hidden)}/meta`, { key: owner.key })).json.owner).toBe(
      owner.userId,
    );
  });

  it('is answered the same on the multiplexed endpoint: read-write, an empty document, nothing of the blob', async () => {
    const owner = await t.user('owner');
    const stranger = await t.user('stranger');
    const hidden = await hiddenBlob(owner);
    const a = await probeMux(stranger.key, `blob/${hidden}`);
    const b = await probeMux(stranger.key, `blob/b-${randomUUID()}`);
    expect(a).toEqual(b);
    expect(a).toMatchObject({ permission: { access: 'read-write' }, step2: false });
  });

  it('is let in the same on the single-document endpoint, with an empty SyncStep1', async () => {
    const owner = await t.user('owner');
    const stranger = await t.user('stranger');
    const hidden = await hiddenBlob(owner);
    const a = await probeSingle(stranger.key, `blob/${hidden}`);
    const b = await probeSingle(stranger.key, `blob/b-${randomUUID()}`);
    expect(a).toEqual(b);
    expect(a).toHaveProperty('first');
  });

  it('never writes into the owner’s blob: its first write ends the subscription as if the id had just been taken', async () => {
    const owner = await t.user('owner');
    const stranger = await t.user('stranger');
    const hidden = await hiddenBlob(owner);
    const doc = `blob/${hidden}`;
    const socket = await mux(stranger.key);
    await socket.subscribe(doc);
    const answer = await socket.write(doc, update('g', 'STRANGER-TEXT'));
    expect(answer).toMatchObject({ type: 'error', kind: 'BadRequest' });
    expect(socket.lastPermission(doc)).toMatchObject({ access: 'none', reason: 'not found' });
    expect(socket.saw(SECRET)).toBe(false);
    const reader = await mux(owner.key);
    await reader.subscribe(doc);
    reader.send(doc, { type: 'sync-step1', stateVector: EMPTY_STATE_VECTOR });
    const step2 = await reader.waitFor('step2', (f) => f.doc === doc && f.message.type === 'sync-step2');
    expect({ secret: carries(step2.bytes, SECRET), stranger: carries(step2.bytes, 'STRANGER-TEXT') }).toEqual(
      {
        secret: true,
        stranger: false,
      },
    );
    // The attempt is in the owner's audit log.
    const audit = await t.api('GET', `/audit?target=${owner.userId}`, { key: owner.key });
    expect(JSON.stringify(audit.json)).toContain(stranger.userId);
  });

  it('receives nothing of the owner’s later edits while it waits to create', async () => {
    const owner = await t.user('owner');
    const stranger = await t.user('stranger');
    const hidden = await hiddenBlob(owner);
    const doc = `blob/${hidden}`;
    const socket = await mux(stranger.key);
    await socket.prepareFence();
    await socket.subscribe(doc);
    const ownerSocket = await mux(owner.key);
    await ownerSocket.subscribe(doc);
    expect(await ownerSocket.write(doc, update('h', 'LATER-EDIT'))).toMatchObject({ type: 'ack' });
    await socket.fence();
    expect(socket.framesCarrying('LATER-EDIT')).toEqual([]);
    expect(socket.lastPermission(doc)?.access).toBe('read-write');
  });
});

/** One awareness entry whose state carries `marker`. */
function presence(marker: string): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, 1);
  encoding.writeVarUint(encoder, Math.floor(Math.random() * 1_000_000) + 1);
  encoding.writeVarUint(encoder, 1);
  encoding.writeVarString(encoder, JSON.stringify({ marker }));
  return encoding.toUint8Array(encoder);
}

describe('strangers on the same blob id', () => {
  it('see each other’s presence alike whether the id is free or taken, and the owner sees none of it', async () => {
    const owner = await t.user('owner');
    const hidden = await hiddenBlob(owner);
    const ownerSocket = await mux(owner.key);
    await ownerSocket.prepareFence();
    await ownerSocket.subscribe(`blob/${hidden}`);
    const probe = async (id: string): Promise<boolean> => {
      const doc = `blob/${id}`;
      const [one, two] = [await mux((await t.user('s1')).key), await mux((await t.user('s2')).key)];
      await two.prepareFence();
      await one.subscribe(doc);
      await two.subscribe(doc);
      const marker = `here-${randomUUID()}`;
      one.send(doc, { type: 'awareness', update: presence(marker) });
      await one.waitFor(
        'its own presence',
        (f) => f.message.type === 'awareness' && carries(f.bytes, marker),
      );
      await two.fence();
      await ownerSocket.fence();
      expect(ownerSocket.saw(marker)).toBe(false);
      return two.saw(marker);
    };
    expect(await probe(hidden)).toBe(await probe(`b-${randomUUID()}`));
  });
});

describe('a moderator probing an owner-read draft', () => {
  it('gets the same answers as for an absent key: subscribe, If-Match, read', async () => {
    const alice = await t.user('alice');
    const moderator = await t.user('moderator', Level.Moderator);
    const draft = `d-${randomUUID()}`;
    const absent = `d-${randomUUID()}`;
    const created = await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/${draft}`, {
      key: alice.key,
      body: { value: { text: SECRET }, read: 1 },
    });
    expect(created.status).toBe(200);
    const a = await probeMux(moderator.key, `USER_PUBLIC/${alice.userId}/${draft}`);
    const b = await probeMux(moderator.key, `USER_PUBLIC/${alice.userId}/${absent}`);
    expect(a).toEqual(b);
    for (const [method, options] of [
      ['POST', { body: { value: { x: 1 } }, headers: { 'if-match': '999' } }],
      ['GET', {}],
    ] as const) {
      const ha = await t.api(method, `/userdata/${alice.userId}/USER_PUBLIC/${draft}`, {
        key: moderator.key,
        ...options,
      });
      const hb = await t.api(method, `/userdata/${alice.userId}/USER_PUBLIC/${absent}`, {
        key: moderator.key,
        ...options,
      });
      expect(shape(ha, [draft]), method).toEqual(shape(hb, [absent]));
    }
    // The runtime acting on the moderator's behalf answers alike.
    const onBehalf = async (key: string): Promise<string> => {
      const request = {
        requestingUserId: moderator.userId,
        requestingUserLevel: Level.Moderator,
        targetUserId: alice.userId,
        scope: 'USER_PUBLIC',
        key,
      };
      const read = await t.relay.runtime.getUserData(request);
      const write = await t.relay.runtime.setUserData({ ...request, value: { x: 1 }, ifVersion: 999 }).then(
        () => 'written',
        (error: Error) => error.message,
      );
      return JSON.stringify({ read, write }).split(key).join('<key>');
    };
    expect(await onBehalf(draft)).toBe(await onBehalf(absent));
    const ownerView = await t.api('GET', `/userdata/${alice.userId}/USER_PUBLIC/${draft}`, {
      key: alice.key,
    });
    expect(ownerView.json.value).toEqual({ text: SECRET });
  });
});
