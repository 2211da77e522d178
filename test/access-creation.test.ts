import { randomUUID } from 'node:crypto';
import { Level } from '@scopesync/core';
import { describe, expect, it, vi } from 'vitest';
import { enc } from './support/http-client.ts';
import { type TestUser, useTestRelay } from './support/start-test-relay.ts';
import {
  carries,
  type DocClient,
  EMPTY_STATE_VECTOR,
  grantsRead,
  type MuxSocket,
  RawDocSocket,
  update,
  useSyncSockets,
  WAIT_MS,
} from './support/sync-sockets.ts';

/*
 * Being let in to a document that does not exist yet (because the caller could create it, or
 * to wait for it) grants nothing once it exists: when its owner creates it, the relay decides
 * again, before anything of the new object is sent. A caller who may not read what was created
 * loses the subscription (multiplexed: a permission that does not grant reading; single-doc:
 * the socket closed with 44xx) and receives neither the created value, nor later edits, nor an
 * answer to a SyncStep1 sent afterwards. A caller who may read it is audited like over HTTP.
 */

const t = useTestRelay();
const SECRET = 'SECRET-DRAFT';
const LATER = 'LATER-EDIT';

const { mux, single } = useSyncSockets(t);

/** A socket subscribed to `doc` before it exists, with its fence ready; whatever it was answered. */
async function early(key: string, doc: string): Promise<MuxSocket> {
  const socket = await mux(key);
  await socket.prepareFence();
  await socket.subscribe(doc);
  return socket;
}

/**
 * A stock y-websocket client opened on `doc` before it exists. Resolves once the relay let it
 * in (synced, and handled the client's own answer to its SyncStep1) or refused it; either is
 * fine before the creation.
 */
async function earlySingle(key: string, doc: string): Promise<DocClient> {
  const client = single(doc, key);
  await client.until('the first connection', () => client.provider.synced || client.errors > 0);
  if (client.errors === 0) await client.settle();
  return client;
}

/** The owner's writes over the multiplexed socket: subscribe (with `read`, if given) and the values, acked. */
async function ownerWrites(owner: TestUser, doc: string, values: string[], read?: 0 | 1 | 2): Promise<void> {
  const socket = await mux(owner.key);
  socket.send(doc, {
    type: 'subscribe',
    mode: 'plaintext',
    sinceSeq: 0,
    ...(read === undefined ? {} : { read }),
  });
  for (const value of values) {
    const answer = await socket.write(doc, update(`f-${randomUUID()}`, value));
    // An error here on a blob means someone else holds it: opening it early must not have claimed it.
    expect(answer, `the owner's write of ${value} to ${doc}`).toMatchObject({ type: 'ack' });
  }
}

/**
 * After the creation: the early subscriber asks for the document again (SyncStep1), the
 * owner writes once more, and then, at the fence, it must have been told that it cannot read
 * and hold none of the texts.
 */
async function expectShutOut(
  socket: MuxSocket,
  doc: string,
  later: () => Promise<void>,
  ...texts: string[]
): Promise<void> {
  socket.send(doc, { type: 'sync-step1', stateVector: EMPTY_STATE_VECTOR });
  await later();
  await socket.fence();
  const last = socket.lastPermission(doc);
  expect(grantsRead(last?.access), `last permission for ${doc}: ${last?.access} ${last?.reason}`).toBe(false);
  for (const text of texts) expect(socket.framesCarrying(text), `frames carrying ${text}`).toEqual([]);
}

/** A single-document client let in early was closed with 4403 and never received `text` (or was refused at once). */
async function expectClosedWithout(client: DocClient, text: string): Promise<void> {
  if (client.errors > 0) {
    expect(client.holds(text)).toBe(false);
    return;
  }
  const closed = await client.closedByRelay().catch((error: Error) => error.message);
  expect({ closed, received: client.holds(text) }).toEqual({ closed: 4403, received: false });
}

/** The owner creates (or replaces) blob `id`'s raw bytes over HTTP. */
const putBlob = async (owner: TestUser, id: string, body = 'raw bytes'): Promise<void> => {
  const put = await t.api('PUT', `/blob/${enc(id)}`, { key: owner.key, body });
  // 404 here means someone else holds the blob: opening it early must not have claimed it.
  expect(put.status, `PUT /blob/${id} by its owner: ${JSON.stringify(put.json)}`).toBe(200);
};

describe('a stranger subscribed to a blob before its owner creates it (multiplexed)', () => {
  it('created over HTTP PUT: loses it, gets no edits and nothing from a later SyncStep1', async () => {
    const owner = await t.user('owner');
    const stranger = await t.user('stranger');
    const id = `b-${randomUUID()}`;
    const doc = `blob/${id}`;
    const socket = await early(stranger.key, doc);
    await putBlob(owner, id);
    await ownerWrites(owner, doc, [SECRET]);
    await expectShutOut(socket, doc, () => ownerWrites(owner, doc, [LATER]), SECRET, LATER);
  });

  it('created by a WebSocket write: loses it before the first value is sent', async () => {
    const owner = await t.user('owner');
    const stranger = await t.user('stranger');
    const doc = `blob/b-${randomUUID()}`;
    const socket = await early(stranger.key, doc);
    await ownerWrites(owner, doc, [SECRET]);
    await expectShutOut(socket, doc, () => ownerWrites(owner, doc, [LATER]), SECRET, LATER);
  });
});

describe('a stranger connected to a blob before its owner creates it (single-document, y-websocket)', () => {
  it('created over HTTP PUT: its socket is closed with 4403 and it never receives an edit', async () => {
    const owner = await t.user('owner');
    const stranger = await t.user('stranger');
    const id = `b-${randomUUID()}`;
    const doc = `blob/${id}`;
    const client = await earlySingle(stranger.key, doc);
    await putBlob(owner, id);
    await ownerWrites(owner, doc, [SECRET]);
    await expectClosedWithout(client, SECRET);
  });

  it('created by a WebSocket write: its socket is closed with 4403 before the value reaches it', async () => {
    const owner = await t.user('owner');
    const stranger = await t.user('stranger');
    const doc = `blob/b-${randomUUID()}`;
    const client = await earlySingle(stranger.key, doc);
    await ownerWrites(owner, doc, [SECRET]);
    await expectClosedWithout(client, SECRET);
  });
});

describe('a bare single-document client connected to a blob before its owner creates it', () => {
  // Sends nothing at all, so it cannot claim the blob: only the creation can end its access.
  for (const how of ['HTTP PUT', 'a WebSocket write'] as const) {
    it(`created by ${how}: is closed with 4403 and never receives the blob`, async () => {
      const owner = await t.user('owner');
      const stranger = await t.user('stranger');
      const id = `b-${randomUUID()}`;
      const doc = `blob/${id}`;
      let socket: RawDocSocket | null = null;
      try {
        socket = await RawDocSocket.open(t, doc, stranger.key);
      } catch {
        // Refused at the upgrade: that grants nothing either.
      }
      if (how === 'HTTP PUT') await putBlob(owner, id);
      await ownerWrites(owner, doc, [SECRET]);
      if (socket === null) return;
      try {
        const closed = await socket.closedByRelay().catch((error: Error) => error.message);
        expect({ closed, receivedSecret: socket.saw(SECRET) }).toEqual({
          closed: 4403,
          receivedSecret: false,
        });
      } finally {
        socket.close();
      }
    });
  }
});

describe('opening a blob that does not exist yet', () => {
  it('with a stock y-websocket client does not make the opener its owner', async () => {
    const owner = await t.user('owner');
    const stranger = await t.user('stranger');
    const id = `b-${randomUUID()}`;
    await earlySingle(stranger.key, `blob/${id}`);
    // The client's handshake (an empty SyncStep2) carries no content: it creates nothing.
    expect((await t.api('GET', `/blob/${enc(id)}/meta`, { key: stranger.key })).status).toBe(404);
    await putBlob(owner, id);
    const meta = await t.api('GET', `/blob/${enc(id)}/meta`, { key: owner.key });
    expect(meta.json.owner).toBe(owner.userId);
  });
});

describe('staff subscribed to an object before it exists', () => {
  it('a moderator does not read the owner-read draft its owner then creates over HTTP', async () => {
    const alice = await t.user('alice');
    const mod = await t.user('mod', Level.Moderator);
    const key = `draft-${randomUUID()}`;
    const doc = `USER_PUBLIC/${alice.userId}/${key}`;
    const socket = await early(mod.key, doc);
    const created = await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/${key}`, {
      key: alice.key,
      body: { value: { text: SECRET }, read: 1 },
    });
    expect(created.status).toBe(200);
    await expectShutOut(
      socket,
      doc,
      async () => {
        const later = await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/${key}`, {
          key: alice.key,
          body: { value: { text: LATER } },
        });
        expect(later.status).toBe(200);
      },
      SECRET,
      LATER,
    );
  });

  it('a moderator does not read the owner-read draft its owner then creates over the socket (read 1)', async () => {
    const alice = await t.user('alice');
    const mod = await t.user('mod', Level.Moderator);
    const doc = `USER_PUBLIC/${alice.userId}/draft-${randomUUID()}`;
    const socket = await early(mod.key, doc);
    await ownerWrites(alice, doc, [SECRET], 1);
    await expectShutOut(socket, doc, () => ownerWrites(alice, doc, [LATER]), SECRET, LATER);
  });

  it('an admin does not read a SERVER_SCOPE object the runtime then creates (read 0)', async () => {
    const admin = await t.user('admin', Level.Admin);
    const doc = `SERVER_SCOPE/_/config-${randomUUID()}`;
    const socket = await early(admin.key, doc);
    await t.relay.runtime.set(doc, { text: SECRET });
    await expectShutOut(
      socket,
      doc,
      async () => {
        await t.relay.runtime.set(doc, { text: LATER });
      },
      SECRET,
      LATER,
    );
  });
});

describe('a subscription to another user’s blob (posing as one to an absent blob)', () => {
  it('does not read the blob its owner deletes and creates again', async () => {
    const owner = await t.user('owner');
    const stranger = await t.user('stranger');
    const id = `b-${randomUUID()}`;
    const doc = `blob/${id}`;
    await putBlob(owner, id);
    await ownerWrites(owner, doc, ['before']);
    const socket = await early(stranger.key, doc);
    // Answered like an absent blob it could create (docs/security.md, "Existence"), with nothing of it.
    expect(socket.lastPermission(doc)?.access).toBe('read-write');
    expect(socket.saw('before')).toBe(false);
    expect((await t.api('DELETE', `/blob/${enc(id)}`, { key: owner.key })).status).toBe(204);
    await ownerWrites(owner, doc, [SECRET]);
    await expectShutOut(socket, doc, () => ownerWrites(owner, doc, [LATER]), SECRET, LATER);
  });
});

describe('a cross-user read that starts because of a creation', () => {
  it('is audited for the owner, on channel ws', async () => {
    const alice = await t.user('alice');
    const mod = await t.user('mod', Level.Moderator);
    const key = `profile-${randomUUID()}`;
    const doc = `USER_PUBLIC/${alice.userId}/${key}`;
    const readsByMod = async (): Promise<unknown[]> => {
      const audit = await t.api('GET', `/audit?target=${alice.userId}&limit=1000`, { key: alice.key });
      expect(audit.status).toBe(200);
      return (audit.json.entries as Record<string, unknown>[]).filter(
        (e) =>
          e.accessor === mod.userId &&
          e.action === 'read' &&
          e.result === 'ok' &&
          e.channel === 'ws' &&
          typeof e.key === 'string' &&
          e.key.includes(key),
      );
    };
    const socket = await early(mod.key, doc);
    socket.send(doc, { type: 'sync-step1', stateVector: EMPTY_STATE_VECTOR });
    const before = (await readsByMod()).length;

    const created = await t.api('POST', `/userdata/${alice.userId}/USER_PUBLIC/${key}`, {
      key: alice.key,
      body: { value: { name: 'Alice in public' }, read: 2 },
    });
    expect(created.status).toBe(200);
    // The moderator reads it now, over its socket ...
    await socket.waitFor('the created profile', (f) => f.doc === doc && carries(f.bytes, 'Alice in public'));
    expect(grantsRead(socket.lastPermission(doc)?.access)).toBe(true);
    // ... and Alice can see that it did.
    await vi.waitFor(async () => expect((await readsByMod()).length).toBeGreaterThan(before), {
      timeout: WAIT_MS,
    });
  });
});
