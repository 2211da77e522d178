import {
  decodeDocFrame,
  decodeMuxFrame,
  encodeDocFrame,
  encodeMuxFrame,
  MemoryDocStore,
  type Message,
  parseDocName,
} from '@scopesync/core';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import { DocHub, type EnvelopeVerifier } from '../documents/doc-hub.ts';
import { LocalEventBus } from '../events/local-event-bus.ts';
import { RUNTIME_ORIGIN } from '../events/relay-events.ts';
import { Metrics } from '../metrics.ts';
import type { SyncLog } from './sync-log.ts';
import { SyncServer, type SyncServerLimits } from './sync-server.ts';
import { ALICE, BOB, serveSync, TestAuthority } from './sync-test-authority.ts';

interface Fixture {
  url: string;
  bus: LocalEventBus;
  hub: DocHub;
  store: MemoryDocStore;
  authority: TestAuthority;
  server: SyncServer;
  metrics: Metrics;
  logs: unknown[][];
}

const teardowns: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const t of teardowns.splice(0).reverse()) await t();
});

async function start(
  limits: Partial<SyncServerLimits> = {},
  verifyEnvelope?: EnvelopeVerifier,
  deliveryLease?: { fresh(): boolean },
): Promise<Fixture> {
  const logs: unknown[][] = [];
  const log: SyncLog = (...args) => {
    logs.push(args);
  };
  const store = new MemoryDocStore();
  const metrics = new Metrics();
  const bus = new LocalEventBus();
  const hub = new DocHub({ store, bus, metrics, log, verifyEnvelope });
  const authority = new TestAuthority();
  authority.bus = bus;
  const server = new SyncServer({ hub, bus, authority, metrics, log, limits, deliveryLease });
  const { url, close } = await serveSync(server, hub);
  teardowns.push(close);
  return { url, bus, hub, store, authority, server, metrics, logs };
}

/** A raw WebSocket client that decodes frames and lets a test wait for the next matching one. */
class Client {
  readonly frames: Array<{ docName: string | null; message: Message }> = [];
  readonly #waiters: Array<() => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  readonly opened: Promise<void>;

  private constructor(
    readonly ws: WebSocket,
    readonly mux: boolean,
  ) {
    this.opened = new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    // Listen before the socket opens: the relay's first frame can arrive with the 101 response.
    ws.on('message', (data: Buffer) => {
      const bytes = new Uint8Array(data);
      this.frames.push(mux ? decodeMuxFrame(bytes) : { docName: null, message: decodeDocFrame(bytes) });
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    teardowns.push(async () => {
      ws.terminate();
    });
  }

  static async open(url: string, mux: boolean): Promise<Client> {
    const client = new Client(new WebSocket(url), mux);
    await client.opened;
    return client;
  }

  /** Removes and returns the first frame satisfying `match`, waiting for it if needed. */
  async next<T extends Message['type']>(
    type: T,
    match: (m: Extract<Message, { type: T }>, docName: string | null) => boolean = () => true,
  ): Promise<Extract<Message, { type: T }>> {
    for (;;) {
      const index = this.frames.findIndex(
        (f) => f.message.type === type && match(f.message as Extract<Message, { type: T }>, f.docName),
      );
      if (index >= 0) return this.frames.splice(index, 1)[0]?.message as Extract<Message, { type: T }>;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  has(type: Message['type']): boolean {
    return this.frames.some((f) => f.message.type === type);
  }

  send(message: Message, docName?: string): void {
    this.ws.send(docName === undefined ? encodeDocFrame(message as never) : encodeMuxFrame(docName, message));
  }
}

/** Status code of a refused upgrade. */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      ws.close();
      reject(new Error('the upgrade was accepted'));
    });
    ws.on('error', () => undefined);
  });
}

function textUpdate(doc: Y.Doc, text: string): Uint8Array {
  const before = Y.encodeStateVector(doc);
  doc.getText('t').insert(0, text);
  return Y.encodeStateAsUpdate(doc, before);
}

function awarenessUpdate(entries: Array<{ clientId: number; clock: number; state: unknown }>): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, entries.length);
  for (const e of entries) {
    encoding.writeVarUint(encoder, e.clientId);
    encoding.writeVarUint(encoder, e.clock);
    encoding.writeVarString(encoder, JSON.stringify(e.state));
  }
  return encoding.toUint8Array(encoder);
}

function decodeAwareness(update: Uint8Array): Array<{ clientId: number; clock: number; state: unknown }> {
  const decoder = decoding.createDecoder(update);
  const n = decoding.readVarUint(decoder);
  return Array.from({ length: n }, () => ({
    clientId: decoding.readVarUint(decoder),
    clock: decoding.readVarUint(decoder),
    state: JSON.parse(decoding.readVarString(decoder)),
  }));
}

const NOTES = parseDocName('PUBLIC_RW/_/notes').name;
const ALICE_PUBLIC = parseDocName(`USER_PUBLIC/${ALICE}/profile`).name;
const ALICE_PRIVATE = parseDocName(`USER_PRIVATE/${ALICE}/diary`).name;
const BLOB = parseDocName('blob/b1').name;

/** Alice's socket and two of bob's on BLOB, each past its SyncStep1. */
async function aliceAndTwoBobs(f: Fixture): Promise<{ alice: Client; bobs: Client[] }> {
  const alice = await Client.open(`${f.url}/sync/${BLOB}?key=alice-key`, false);
  const bobs = [await Client.open(`${f.url}/sync/${BLOB}?key=bob-key`, false)];
  bobs.push(await Client.open(`${f.url}/sync/${BLOB}?key=bob-key`, false));
  await alice.next('sync-step1');
  for (const bob of bobs) await bob.next('sync-step1');
  return { alice, bobs };
}

/** Each socket's next write is refused: its access is read-only now. */
async function expectWritesRefused(sockets: readonly Client[]): Promise<void> {
  for (const socket of sockets) {
    socket.send({ type: 'sync-update', update: textUpdate(new Y.Doc(), 'no') });
    expect((await socket.next('permission-denied')).reason).toMatch(/share|owner|write/);
  }
}

/** A relay whose blob BLOB belongs to alice and is shared read-write with bob. */
async function startWithSharedBlob(deliveryLease?: { fresh(): boolean }): Promise<Fixture> {
  const f = await start({}, undefined, deliveryLease);
  f.authority.objects.set(BLOB, { owner: ALICE, read: 1, write: 1, shares: new Map([[BOB, 'read_write']]) });
  return f;
}

describe('SyncServer upgrade', () => {
  it('refuses with plain HTTP statuses before the socket opens', async () => {
    const f = await start();
    f.authority.objects.set(BLOB, { owner: ALICE, read: 1, write: 1 });
    expect(await upgradeStatus(`${f.url}/sync/not-a-doc`)).toBe(400);
    expect(await upgradeStatus(`${f.url}/sync/blob/a%2F..%2Fb`)).toBe(400);
    expect(await upgradeStatus(`${f.url}/sync/${NOTES}?key=nope`)).toBe(401);
    expect(await upgradeStatus(`${f.url}/sync?key=nope`)).toBe(401);
    expect(await upgradeStatus(`${f.url}/sync/${ALICE_PRIVATE}?key=bob-key`)).toBe(403);
    // Not refused: carol poses as the creator of an absent blob (test/existence-oracle.test.ts).
    expect(await upgradeStatus(`${f.url}/elsewhere`)).toBe(404);
    // The owner may not sync a private document in plaintext either.
    expect(await upgradeStatus(`${f.url}/sync/${ALICE_PRIVATE}?key=alice-key`)).toBe(400);
    expect(f.server.connections).toBe(0);
    expect(f.metrics.render()).toMatch(/scopesync_sync_denials_total [1-9]/);
  });

  it('accepts the name percent-encoded as one segment or raw with slashes', async () => {
    const f = await start();
    const encoded = await Client.open(`${f.url}/sync/${encodeURIComponent(NOTES)}`, false);
    const raw = await Client.open(`${f.url}/sync/${NOTES}`, false);
    await encoded.next('sync-step1');
    await raw.next('sync-step1');
    encoded.send({ type: 'sync-update', update: textUpdate(new Y.Doc(), 'hi') });
    const update = await raw.next('sync-update');
    const doc = new Y.Doc();
    Y.applyUpdate(doc, update.update);
    expect(doc.getText('t').toString()).toBe('hi');
  });
});

describe('SyncServer single-document endpoint', () => {
  it('answers SyncStep1 and stores writes', async () => {
    const f = await start();
    const client = await Client.open(`${f.url}/sync/${NOTES}`, false);
    await client.next('sync-step1');
    const local = new Y.Doc();
    client.send({ type: 'sync-update', update: textUpdate(local, 'hello') });
    client.send({ type: 'sync-step1', stateVector: Y.encodeStateVector(new Y.Doc()) });
    const step2 = await client.next('sync-step2');
    const copy = new Y.Doc();
    Y.applyUpdate(copy, step2.update);
    expect(copy.getText('t').toString()).toBe('hello');
    await f.hub.flush();
    expect(await f.store.head(NOTES)).toBe(1);
  });

  it('drops the empty SyncStep2 of a client with an empty document without touching the document', async () => {
    const f = await start();
    const client = await Client.open(`${f.url}/sync/${NOTES}`, false);
    await client.next('sync-step1');
    // A read through an operation, or of the document held ready (the SyncStep1 answer's way).
    const readSpies = [vi.spyOn(f.hub, 'read'), vi.spyOn(f.hub, 'readyDoc')];
    const reads = (): number => readSpies.reduce((n, spy) => n + spy.mock.calls.length, 0);
    // Either way into the hub: an operation, or the live path of a held document.
    const entries = [vi.spyOn(f.hub, 'enqueueUpdate'), vi.spyOn(f.hub, 'enqueueHeldUpdate')];
    const writes = (): number => entries.reduce((n, spy) => n + spy.mock.calls.length, 0);
    client.send({ type: 'sync-step2', update: Y.encodeStateAsUpdate(new Y.Doc()) });
    // A socket's frames are processed in order: this answer comes after the step2 was handled.
    client.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
    await client.next('sync-step2');
    // Every connecting idle client sends one: no read to check it, no no-op write.
    expect(writes()).toBe(0);
    expect(reads()).toBe(1); // the SyncStep1 answer
    // A SyncStep2 that carries something is still written.
    client.send({ type: 'sync-step2', update: textUpdate(new Y.Doc(), 'kept') });
    client.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
    await client.next('sync-step2');
    expect(writes()).toBe(1);
    await f.hub.flush();
    expect(await f.store.head(NOTES)).toBe(1);
    expect(await f.hub.read(NOTES, (d) => d.getText('t').toString())).toBe('kept');
  });

  it('reads an object’s metadata once to decide whether a socket may open, and still audits the read', async () => {
    const f = await start();
    f.authority.objects.set(ALICE_PUBLIC, { owner: ALICE, read: 2, write: 1 });
    const absent = await Client.open(`${f.url}/sync/${NOTES}?key=bob-key`, false);
    await absent.next('sync-step1');
    expect(f.authority.reads).toBe(1);
    const crossUser = await Client.open(`${f.url}/sync/${ALICE_PUBLIC}?key=bob-key`, false);
    await crossUser.next('sync-step1');
    expect(f.authority.reads).toBe(2);
    expect(f.authority.audits).toEqual([{ caller: BOB, action: 'read', name: ALICE_PUBLIC, allowed: true }]);
  });

  it('decides every socket of a document again on one read of its metadata when its access changes', async () => {
    const f = await startWithSharedBlob();
    const { alice, bobs } = await aliceAndTwoBobs(f);
    const before = f.authority.reads;
    f.authority.share(BLOB, BOB, 'read_only');
    await f.bus.publish({ type: 'access-changed', name: BLOB, cause: 'flags' });
    // Three sockets, one read: each decided for its own caller on the same metadata.
    expect(f.authority.reads - before).toBe(1);
    await expectWritesRefused(bobs);
    // The owner still writes, and read-only sockets still read.
    alice.send({ type: 'sync-update', update: textUpdate(new Y.Doc(), 'yes') });
    for (const bob of bobs) {
      const copy = new Y.Doc();
      Y.applyUpdate(copy, (await bob.next('sync-update')).update);
      expect(copy.getText('t').toString()).toBe('yes');
    }
  });

  it('re-checks every socket of a document on one read of its metadata in the periodic sweep, and applies what it finds', async () => {
    const f = await startWithSharedBlob();
    const { bobs } = await aliceAndTwoBobs(f);
    // The share narrowed with no event heard (lost between relays): only the sweep finds it.
    f.authority.share(BLOB, BOB, 'read_only');
    const before = f.authority.reads;
    await f.server.revalidate();
    expect(f.authority.reads - before).toBe(1);
    await expectWritesRefused(bobs);
  });

  it('reads a document again in the sweep once an access change was heard after its read started', async () => {
    const f = await startWithSharedBlob();
    await aliceAndTwoBobs(f);
    // Each read of the metadata during the sweep is followed by an access change of another
    // document, heard before the next socket is decided: no read may be reused.
    const check = f.authority.check.bind(f.authority);
    f.authority.check = async (caller, action, address, options) => {
      const answer = await check(caller, action, address, options);
      if (options?.loaded === undefined)
        await f.bus.publish({ type: 'access-changed', name: ALICE_PUBLIC, cause: 'flags' });
      return answer;
    };
    const before = f.authority.reads;
    await f.server.revalidate();
    expect(f.authority.reads - before).toBe(3);
  });

  it('checks every socket of a document on one read of its metadata before a delivery while the lease does not hold', async () => {
    const lease = { holds: true, fresh: () => lease.holds };
    const f = await startWithSharedBlob(lease);
    const { alice, bobs } = await aliceAndTwoBobs(f);
    // Alice's first write is authorised (a read of its own) while the lease holds.
    alice.send({ type: 'sync-update', update: textUpdate(new Y.Doc(), 'a') });
    for (const bob of bobs) await bob.next('sync-update');
    lease.holds = false;
    const before = f.authority.reads;
    alice.send({ type: 'sync-update', update: textUpdate(new Y.Doc(), 'b') });
    for (const bob of bobs) {
      const copy = new Y.Doc();
      Y.applyUpdate(copy, (await bob.next('sync-update')).update);
      expect(copy.getText('t').toString()).toBe('b');
    }
    // Three sockets checked before the delivery, on one read of the object.
    expect(f.authority.reads - before).toBe(1);
    expect(f.metrics.render()).toMatch(/scopesync_sync_lease_checks_total 3/);
  });

  it("applies an authorised live edit in its frame's turn, and refuses the next one once write access is gone", async () => {
    const f = await startWithSharedBlob();
    const alice = await Client.open(`${f.url}/sync/${BLOB}?key=alice-key`, false);
    const bob = await Client.open(`${f.url}/sync/${BLOB}?key=bob-key`, false);
    await alice.next('sync-step1');
    await bob.next('sync-step1');
    // The document is held by the sockets: no hub operation (and no promise) on an edit's way.
    const operations = vi.spyOn(f.hub, 'enqueueUpdate');
    const live = vi.spyOn(f.hub, 'enqueueHeldUpdate');
    const local = new Y.Doc();
    bob.send({ type: 'sync-update', update: textUpdate(local, 'a') });
    const copy = new Y.Doc();
    Y.applyUpdate(copy, (await alice.next('sync-update')).update);
    bob.send({ type: 'sync-update', update: textUpdate(local, 'b') });
    Y.applyUpdate(copy, (await alice.next('sync-update')).update);
    expect(copy.getText('t').toString()).toBe('ba');
    expect(live).toHaveBeenCalledTimes(2);
    expect(operations).not.toHaveBeenCalled();

    f.authority.share(BLOB, BOB, 'read_only');
    await f.bus.publish({ type: 'access-changed', name: BLOB, cause: 'flags' });
    bob.send({ type: 'sync-update', update: textUpdate(local, 'c') });
    expect((await bob.next('permission-denied')).reason).toMatch(/share|owner|write/);
    await f.hub.flush();
    expect(await f.hub.read(BLOB, (d) => d.getText('t').toString())).toBe('ba');
    expect(await f.store.head(BLOB)).toBe(2);
    expect(alice.has('sync-update')).toBe(false);
  });

  it('syncs a read-only caller but drops its edits and tells it so', async () => {
    const f = await start();
    const owner = await Client.open(`${f.url}/sync/${ALICE_PUBLIC}?key=alice-key`, false);
    await owner.next('sync-step1');
    owner.send({ type: 'sync-update', update: textUpdate(new Y.Doc(), 'mine') });
    owner.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
    await owner.next('sync-step2');

    const reader = await Client.open(`${f.url}/sync/${ALICE_PUBLIC}?key=bob-key`, false);
    await reader.next('sync-step1');
    reader.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
    const step2 = await reader.next('sync-step2');
    const copy = new Y.Doc();
    Y.applyUpdate(copy, step2.update);
    expect(copy.getText('t').toString()).toBe('mine');

    reader.send({ type: 'sync-update', update: textUpdate(copy, 'not yours ') });
    const denied = await reader.next('permission-denied');
    expect(denied.reason).toMatch(/owner/);
    await f.hub.flush();
    expect(await f.hub.read(ALICE_PUBLIC, (d) => d.getText('t').toString())).toBe('mine');
    expect(await f.store.head(ALICE_PUBLIC)).toBe(1);
    // A read-only client's step2 carrying nothing new is dropped quietly.
    reader.send({ type: 'sync-step2', update: Y.encodeStateAsUpdate(new Y.Doc()) });
    // Round trips: each socket's frames are processed in order, so these answers come after.
    reader.send({ type: 'sync-step1', stateVector: Y.encodeStateVector(copy) });
    await reader.next('sync-step2');
    owner.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
    await owner.next('sync-step2');
    expect(reader.has('permission-denied')).toBe(false);
    expect(owner.has('sync-update')).toBe(false);
    // The write denial is audited once per subscription, the cross-user read once.
    const bobAudits = f.authority.audits.filter((a) => a.caller === BOB);
    expect(bobAudits).toEqual([
      { caller: BOB, action: 'read', name: ALICE_PUBLIC, allowed: true },
      { caller: BOB, action: 'write', name: ALICE_PUBLIC, allowed: false },
    ]);
  });

  it('echoes awareness to its sender, binds it to the user, and strips other sockets’ client ids', async () => {
    const f = await start();
    const a = await Client.open(`${f.url}/sync/${NOTES}?key=alice-key`, false);
    const b = await Client.open(`${f.url}/sync/${NOTES}?key=bob-key`, false);
    a.send({
      type: 'awareness',
      update: awarenessUpdate([{ clientId: 11, clock: 1, state: { user: { name: 'A', id: 'forged' } } }]),
    });
    const echo = decodeAwareness((await a.next('awareness')).update);
    expect(echo).toEqual([{ clientId: 11, clock: 1, state: { user: { name: 'A', id: ALICE } } }]);
    const seen = decodeAwareness((await b.next('awareness')).update);
    expect(seen[0]?.state).toEqual({ user: { name: 'A', id: ALICE } });

    // Bob tries to speak for Alice's client id 11, and announces his own 22.
    b.send({
      type: 'awareness',
      update: awarenessUpdate([
        { clientId: 11, clock: 5, state: { user: { name: 'evil' } } },
        { clientId: 22, clock: 1, state: { cursor: 3 } },
      ]),
    });
    const bEcho = decodeAwareness((await b.next('awareness')).update);
    expect(bEcho).toEqual([{ clientId: 22, clock: 1, state: { cursor: 3, user: { id: BOB } } }]);

    b.send({ type: 'query-awareness' });
    const all = decodeAwareness((await b.next('awareness')).update);
    expect(all.map((e) => e.clientId).sort()).toEqual([11, 22]);
    expect(all.find((e) => e.clientId === 11)?.state).toEqual({ user: { name: 'A', id: ALICE } });

    // When Bob leaves, his state is removed for everyone else.
    b.ws.close();
    const removal = decodeAwareness(
      (await a.next('awareness', (m) => decodeAwareness(m.update)[0]?.state === null)).update,
    );
    expect(removal).toEqual([{ clientId: 22, clock: 2, state: null }]);
  });

  it('closes a socket that sends a malformed frame with 4400, and only that one', async () => {
    const f = await start();
    const bad = await Client.open(`${f.url}/sync/${NOTES}`, false);
    const good = await Client.open(`${f.url}/sync/${NOTES}`, false);
    bad.ws.send(new Uint8Array([0, 9, 9]));
    expect((await bad.closed).code).toBe(4400);
    const garbageUpdate = encodeDocFrame({ type: 'sync-update', update: new Uint8Array([5, 200, 1, 2]) });
    const bad2 = await Client.open(`${f.url}/sync/${NOTES}`, false);
    bad2.ws.send(garbageUpdate);
    expect((await bad2.closed).code).toBe(4400);
    good.send({ type: 'sync-update', update: textUpdate(new Y.Doc(), 'still here') });
    good.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
    const step2 = await good.next('sync-step2');
    const copy = new Y.Doc();
    Y.applyUpdate(copy, step2.update);
    expect(copy.getText('t').toString()).toBe('still here');
  });

  it('closes the socket with 4403 when a refresh finds read access gone', async () => {
    const f = await start();
    f.authority.objects.set(BLOB, { owner: ALICE, read: 1, write: 1, shares: new Map([[BOB, 'read_only']]) });
    const bob = await Client.open(`${f.url}/sync/${BLOB}?key=bob-key`, false);
    await bob.next('sync-step1');
    f.authority.share(BLOB, BOB, null);
    await f.bus.publish({ type: 'access-changed', name: BLOB, cause: 'flags' });
    expect((await bob.closed).code).toBe(4403);
  });

  it('closes sockets with 1001 on close()', async () => {
    const f = await start();
    const client = await Client.open(`${f.url}/sync/${NOTES}`, false);
    await client.next('sync-step1');
    expect(f.metrics.render()).toMatch(/scopesync_sync_connections 1/);
    await Promise.all([f.server.close(), f.server.close()]);
    expect((await client.closed).code).toBe(1001);
    expect(await upgradeStatus(`${f.url}/sync/${NOTES}`)).toBe(503);
  });
});

describe('SyncServer multiplexed endpoint', () => {
  it('subscribes, syncs, and acks tracked updates after the commit', async () => {
    const f = await start();
    const c = await Client.open(`${f.url}/sync?key=alice-key`, true);
    c.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, ALICE_PUBLIC);
    expect(await c.next('permission')).toEqual({ type: 'permission', access: 'read-write', reason: '' });
    await c.next('sync-step1');
    const local = new Y.Doc();
    c.send({ type: 'tracked-update', ref: 7, update: textUpdate(local, 'one') }, ALICE_PUBLIC);
    c.send({ type: 'tracked-update', ref: 8, update: textUpdate(local, 'two') }, ALICE_PUBLIC);
    expect(await c.next('ack', (m) => m.ref === 7)).toEqual({ type: 'ack', ref: 7, seq: 1 });
    // Both may arrive in one tick, and then share the row (and seq) their commit stored them in.
    const second = await c.next('ack', (m) => m.ref === 8);
    expect([1, 2]).toContain(second.seq);
    const stored = await f.store.load(ALICE_PUBLIC);
    expect(stored.at(-1)?.seq).toBe(second.seq);
    const copy = new Y.Doc();
    for (const e of stored) Y.applyUpdate(copy, e.data);
    expect(Y.encodeStateVector(copy)).toEqual(Y.encodeStateVector(local));
    expect(f.authority.objects.get(ALICE_PUBLIC)).toMatchObject({ owner: ALICE, read: 2, write: 1 });

    c.send({ type: 'tracked-update', ref: 9, update: new Uint8Array([5, 200, 1, 2]) }, ALICE_PUBLIC);
    expect(await c.next('error', (m) => m.ref === 9)).toMatchObject({ kind: 'InvalidMessage' });
  });

  it('creates a new object with the flags given at subscribe', async () => {
    const f = await start();
    const c = await Client.open(`${f.url}/sync?key=alice-key`, true);
    c.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0, read: 1 }, ALICE_PUBLIC);
    await c.next('permission');
    c.send({ type: 'tracked-update', ref: 1, update: textUpdate(new Y.Doc(), 'draft') }, ALICE_PUBLIC);
    await c.next('ack');
    expect(f.authority.objects.get(ALICE_PUBLIC)).toMatchObject({ owner: ALICE, read: 1 });
    // Bob cannot see an owner-read draft.
    const bob = await Client.open(`${f.url}/sync?key=bob-key`, true);
    bob.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, ALICE_PUBLIC);
    expect(await bob.next('permission')).toMatchObject({ access: 'waiting' });
  });

  it('answers documents it cannot serve with errors, not by closing', async () => {
    const f = await start({ maxDocsPerConnection: 2 });
    const c = await Client.open(`${f.url}/sync?key=alice-key`, true);
    c.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) }, NOTES);
    expect(await c.next('error')).toMatchObject({ ref: 0, kind: 'BadRequest' });
    c.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, ALICE_PRIVATE);
    expect(await c.next('error')).toMatchObject({ ref: 0, kind: 'BadRequest' });
    c.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, 'no/such thing');
    expect(await c.next('error')).toMatchObject({ ref: 0, kind: 'BadRequest' });
    c.send({ type: 'subscribe', mode: 'encrypted', sinceSeq: 0 }, NOTES);
    expect(await c.next('error')).toMatchObject({ ref: 0, kind: 'BadRequest' });
    c.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, NOTES);
    c.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, ALICE_PUBLIC);
    c.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, parseDocName('PUBLIC_RW/_/third').name);
    expect(await c.next('error')).toMatchObject({ ref: 0, kind: 'TooLarge' });
    expect(await c.next('permission', (_m, d) => d === NOTES)).toMatchObject({ access: 'read-write' });
  });

  it('answers a connection-level ping with a pong at once, and accepts the empty doc name for nothing else', async () => {
    const f = await start();
    // A guest: no document is named, so no access is checked beyond the socket's admission.
    const c = await Client.open(`${f.url}/sync`, true);
    c.send({ type: 'ping', nonce: 41 }, '');
    expect(await c.next('pong', (_m, docName) => docName === '')).toEqual({ type: 'pong', nonce: 41 });
    c.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) }, '');
    expect(await c.next('error', (_m, docName) => docName === '')).toMatchObject({
      ref: 0,
      kind: 'BadRequest',
    });
    c.send({ type: 'ping', nonce: 42 }, '');
    expect(await c.next('pong')).toEqual({ type: 'pong', nonce: 42 });

    // A ping naming a document, or a pong sent to the relay, is malformed: that socket closes.
    const named = await Client.open(`${f.url}/sync`, true);
    named.send({ type: 'ping', nonce: 1 }, NOTES);
    expect((await named.closed).code).toBe(4400);
    const backwards = await Client.open(`${f.url}/sync`, true);
    backwards.send({ type: 'pong', nonce: 1 }, '');
    expect((await backwards.closed).code).toBe(4400);
  });

  it('closes the socket with 4400 on a malformed frame, and survives a handler that throws', async () => {
    const f = await start();
    const c = await Client.open(`${f.url}/sync`, true);
    c.ws.send(new Uint8Array([3, 65, 66]));
    expect((await c.closed).code).toBe(4400);

    f.authority.failOn = NOTES;
    const d = await Client.open(`${f.url}/sync`, true);
    d.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, NOTES);
    expect((await d.closed).code).toBe(4500);
    expect(f.logs.some(([level]) => level === 'error')).toBe(true);

    f.authority.failOn = null;
    const e = await Client.open(`${f.url}/sync`, true);
    e.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, NOTES);
    expect(await e.next('permission')).toMatchObject({ access: 'read-write' });
  });

  it('relays awareness per document', async () => {
    const f = await start();
    const a = await Client.open(`${f.url}/sync?key=alice-key`, true);
    const b = await Client.open(`${f.url}/sync?key=bob-key`, true);
    for (const c of [a, b]) {
      c.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, NOTES);
      await c.next('permission');
    }
    a.send({ type: 'awareness', update: awarenessUpdate([{ clientId: 5, clock: 1, state: {} }]) }, NOTES);
    const got = await b.next('awareness', (_m, d) => d === NOTES);
    expect(decodeAwareness(got.update)).toEqual([{ clientId: 5, clock: 1, state: { user: { id: ALICE } } }]);
    b.send({ type: 'unsubscribe' }, NOTES);
    b.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) }, NOTES);
    expect(await b.next('error')).toMatchObject({ kind: 'BadRequest' });
  });

  it('keeps a "not found" subscription waiting, silent, until the document becomes readable', async () => {
    const f = await start({ maxDocsPerConnection: 2 });
    const bob = await Client.open(`${f.url}/sync?key=bob-key`, true);
    bob.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, ALICE_PUBLIC);
    bob.send({ type: 'sync-step1', stateVector: Y.encodeStateVector(new Y.Doc()) }, ALICE_PUBLIC);
    expect(await bob.next('permission')).toEqual({ type: 'permission', access: 'waiting', reason: '' });
    // While waiting: writes are refused (not subscribed yet), nothing else is answered or sent.
    bob.send({ type: 'query-awareness' }, ALICE_PUBLIC);
    bob.send({ type: 'tracked-update', ref: 3, update: textUpdate(new Y.Doc(), 'x') }, ALICE_PUBLIC);
    expect(await bob.next('error', (m) => m.ref === 3)).toMatchObject({
      kind: 'BadRequest',
      message: 'not subscribed to this document yet: not found',
    });
    // It counts against maxDocsPerConnection.
    bob.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, NOTES);
    expect(await bob.next('permission', (_m, d) => d === NOTES)).toMatchObject({ access: 'read-write' });
    bob.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, parseDocName('PUBLIC_RW/_/third').name);
    expect(await bob.next('error')).toMatchObject({ ref: 0, kind: 'TooLarge' });
    bob.send({ type: 'unsubscribe' }, NOTES);
    await f.bus.publish({ type: 'access-changed', name: ALICE_PUBLIC, cause: 'flags' }); // still absent: keeps waiting
    expect(bob.frames.filter((fr) => fr.docName === ALICE_PUBLIC)).toEqual([]);
    expect(f.authority.audits.filter((e) => e.caller === BOB)).toEqual([
      { caller: BOB, action: 'read', name: ALICE_PUBLIC, allowed: false },
    ]);

    // Alice creates it as an owner-read draft: hidden looks the same, bob waits on.
    const alice = await Client.open(`${f.url}/sync?key=alice-key`, true);
    alice.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0, read: 1 }, ALICE_PUBLIC);
    await alice.next('permission');
    const local = new Y.Doc();
    alice.send({ type: 'tracked-update', ref: 1, update: textUpdate(local, 'hello') }, ALICE_PUBLIC);
    await alice.next('ack');
    await f.bus.publish({ type: 'access-changed', name: ALICE_PUBLIC, cause: 'flags' });
    expect(bob.frames.filter((fr) => fr.docName === ALICE_PUBLIC)).toEqual([]);

    // Opened to read 2: bob gets permission, the relay's SyncStep1 and the answer to his own.
    alice.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0, read: 2 }, ALICE_PUBLIC);
    await alice.next('permission');
    alice.send({ type: 'tracked-update', ref: 2, update: textUpdate(local, 'well ') }, ALICE_PUBLIC);
    await alice.next('ack', (m) => m.ref === 2);
    expect(await bob.next('permission', (_m, d) => d === ALICE_PUBLIC)).toEqual({
      type: 'permission',
      access: 'read',
      reason: '',
    });
    await bob.next('sync-step1', (_m, d) => d === ALICE_PUBLIC);
    const step2 = await bob.next('sync-step2', (_m, d) => d === ALICE_PUBLIC);
    const seen = new Y.Doc();
    Y.applyUpdate(seen, step2.update);
    // The write that opened it goes out after the access change: in the answer, or right after.
    if (seen.getText('t').toString() !== 'well hello') {
      Y.applyUpdate(seen, (await bob.next('sync-update', (_m, d) => d === ALICE_PUBLIC)).update);
    }
    expect(seen.getText('t').toString()).toBe('well hello');
    // The refusal was audited once; the start as a (cross-user) read.
    expect(f.authority.audits.filter((e) => e.caller === BOB)).toEqual([
      { caller: BOB, action: 'read', name: ALICE_PUBLIC, allowed: false },
      { caller: BOB, action: 'read', name: ALICE_PUBLIC, allowed: true },
    ]);
    alice.send({ type: 'tracked-update', ref: 3, update: textUpdate(local, 'oh ') }, ALICE_PUBLIC);
    await bob.next('sync-update', (_m, d) => d === ALICE_PUBLIC);
  });

  it('revokes a sharee at once: permission none, later writes refused', async () => {
    const f = await startWithSharedBlob();
    const bob = await Client.open(`${f.url}/sync?key=bob-key`, true);
    bob.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, BLOB);
    expect(await bob.next('permission')).toMatchObject({ access: 'read-write' });
    const local = new Y.Doc();
    bob.send({ type: 'tracked-update', ref: 1, update: textUpdate(local, 'a') }, BLOB);
    await bob.next('ack');

    f.authority.share(BLOB, BOB, 'read_only');
    await f.bus.publish({ type: 'access-changed', name: BLOB, cause: 'flags' });
    expect(await bob.next('permission')).toMatchObject({ access: 'read' });
    bob.send({ type: 'tracked-update', ref: 2, update: textUpdate(local, 'b') }, BLOB);
    expect(await bob.next('error', (m) => m.ref === 2)).toMatchObject({ kind: 'Forbidden' });

    f.authority.share(BLOB, BOB, null);
    await f.bus.publish({ type: 'access-changed', name: BLOB, cause: 'flags' });
    expect(await bob.next('permission')).toMatchObject({ access: 'none' });
    bob.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) }, BLOB);
    expect(await bob.next('error')).toMatchObject({ ref: 0, kind: 'BadRequest' });
    expect(await f.hub.read(BLOB, (d) => d.getText('t').toString())).toBe('a');
  });

  it('tells subscribers of a removed document', async () => {
    const f = await start();
    const c = await Client.open(`${f.url}/sync`, true);
    c.send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }, NOTES);
    await c.next('permission');
    await f.hub.remove(NOTES);
    await f.bus.publish({ type: 'doc-removed', name: NOTES });
    expect(await c.next('permission')).toEqual({ type: 'permission', access: 'none', reason: 'deleted' });
  });

  it('carries the encrypted channel: append, ack, live push, fetch and snapshot', async () => {
    const f = await start();
    const a1 = await Client.open(`${f.url}/sync?key=alice-key`, true);
    const a2 = await Client.open(`${f.url}/sync?key=alice-key`, true);
    a1.send({ type: 'subscribe', mode: 'encrypted', sinceSeq: 0 }, ALICE_PRIVATE);
    expect(await a1.next('permission')).toMatchObject({ access: 'read-write' });
    expect(await a1.next('enc-entries')).toEqual({ type: 'enc-entries', headSeq: 0, entries: [] });
    const env = (n: number): Uint8Array => new Uint8Array([1, n, n]);
    a1.send({ type: 'enc-append', ref: 1, envelope: env(1) }, ALICE_PRIVATE);
    a1.send({ type: 'enc-append', ref: 2, envelope: env(2) }, ALICE_PRIVATE);
    expect(await a1.next('ack', (m) => m.ref === 2)).toEqual({ type: 'ack', ref: 2, seq: 2 });

    a2.send({ type: 'subscribe', mode: 'encrypted', sinceSeq: 1 }, ALICE_PRIVATE);
    await a2.next('permission');
    expect(await a2.next('enc-entries')).toEqual({
      type: 'enc-entries',
      headSeq: 2,
      entries: [{ seq: 2, envelope: env(2) }],
    });
    a1.send({ type: 'enc-append', ref: 3, envelope: env(3) }, ALICE_PRIVATE);
    expect(await a2.next('enc-entries')).toEqual({
      type: 'enc-entries',
      headSeq: 3,
      entries: [{ seq: 3, envelope: env(3) }],
    });

    a2.send({ type: 'enc-snapshot', ref: 4, throughSeq: 2, snapshot: env(9) }, ALICE_PRIVATE);
    expect(await a2.next('ack', (m) => m.ref === 4)).toEqual({ type: 'ack', ref: 4, seq: 2 });
    a2.send({ type: 'enc-fetch', sinceSeq: 0 }, ALICE_PRIVATE);
    expect(await a2.next('enc-entries')).toEqual({
      type: 'enc-entries',
      headSeq: 3,
      entries: [
        { seq: 2, envelope: env(9) },
        { seq: 3, envelope: env(3) },
      ],
    });
    a2.send({ type: 'enc-snapshot', ref: 5, throughSeq: 1, snapshot: env(9) }, ALICE_PRIVATE);
    expect(await a2.next('error', (m) => m.ref === 5)).toMatchObject({ kind: 'Conflict' });
    a2.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) }, ALICE_PRIVATE);
    expect(await a2.next('error')).toMatchObject({ ref: 0, kind: 'BadRequest' });

    // Bob may not even subscribe.
    const bob = await Client.open(`${f.url}/sync?key=bob-key`, true);
    bob.send({ type: 'subscribe', mode: 'encrypted', sinceSeq: 0 }, ALICE_PRIVATE);
    expect(await bob.next('permission')).toMatchObject({ access: 'waiting' });
  });

  it('stores encrypted appends in the order they arrived, even when checking the first takes longer', async () => {
    // Checking an envelope may wait on the store. The first one waits until the second has
    // arrived (or a moment passed, as the second is queued behind it).
    let secondArrived = (): void => undefined;
    const second = new Promise<void>((resolve) => {
      secondArrived = resolve;
    });
    const f = await start({}, async (_name, _caller, envelope) => {
      if (envelope[1] === 1) await Promise.race([second, new Promise((r) => setTimeout(r, 300))]);
      else secondArrived();
    });
    const env = (n: number): Uint8Array => new Uint8Array([1, n, n]);
    // A device sends one envelope, then the next on another socket (as after a reconnect).
    const old = await Client.open(`${f.url}/sync?key=alice-key`, true);
    old.send({ type: 'subscribe', mode: 'encrypted', sinceSeq: 0 }, ALICE_PRIVATE);
    await old.next('enc-entries');
    old.send({ type: 'enc-append', ref: 1, envelope: env(1) }, ALICE_PRIVATE);
    const fresh = await Client.open(`${f.url}/sync?key=alice-key`, true);
    fresh.send({ type: 'subscribe', mode: 'encrypted', sinceSeq: 0 }, ALICE_PRIVATE);
    await fresh.next('enc-entries');
    fresh.send({ type: 'enc-append', ref: 1, envelope: env(2) }, ALICE_PRIVATE);
    expect(await fresh.next('ack')).toEqual({ type: 'ack', ref: 1, seq: 2 });
    const stored = await f.hub.fetchEncrypted(ALICE_PRIVATE, 0);
    expect(stored.entries).toEqual([
      { seq: 1, envelope: env(1) },
      { seq: 2, envelope: env(2) },
    ]);
  });

  it('pages a long encrypted log', async () => {
    const f = await start({ maxEntriesPerPage: 2 });
    for (let i = 1; i <= 5; i++)
      await f.hub.appendEncrypted(ALICE_PRIVATE, new Uint8Array([i]), { origin: RUNTIME_ORIGIN });
    const c = await Client.open(`${f.url}/sync?key=alice-key`, true);
    c.send({ type: 'subscribe', mode: 'encrypted', sinceSeq: 0 }, ALICE_PRIVATE);
    const seqs: number[] = [];
    while (seqs.length < 5) {
      const page = await c.next('enc-entries');
      expect(page.headSeq).toBe(5);
      seqs.push(...page.entries.map((e) => e.seq));
    }
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('SyncServer bounds: one caller cannot take the relay from the others', () => {
  it('closes a socket that sends frames faster than its rate with 4429, and only that one', async () => {
    const f = await start({ maxFramesPerSecond: 5 });
    const flood = await Client.open(`${f.url}/sync/${NOTES}?key=alice-key`, false);
    const calm = await Client.open(`${f.url}/sync/${NOTES}?key=bob-key`, false);
    for (let i = 0; i < 50; i++) flood.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
    expect((await flood.closed).code).toBe(4429);
    calm.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
    await calm.next('sync-step2');
  });

  it('slows a client that sends faster than its frames are handled instead of cutting it off', async () => {
    // Under the rate limit, but far faster than the relay applies and stores: 20,000 edits sent
    // at once. Without backpressure the socket's queue passes its bound and the socket is closed.
    const f = await start({ maxFramesPerSecond: 1_000_000, maxCallerFramesPerSecond: 1_000_000 });
    const writer = await Client.open(`${f.url}/sync/${NOTES}?key=alice-key`, false);
    const local = new Y.Doc();
    const edits = 20_000;
    for (let i = 0; i < edits; i++) writer.send({ type: 'sync-update', update: textUpdate(local, 'x') });
    // Frames are handled in order: the answer to this SyncStep1 comes after every edit.
    writer.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
    const step2 = await Promise.race([
      writer.next('sync-step2'),
      writer.closed.then(({ code, reason }) => {
        throw new Error(`the relay closed the socket: ${code} ${reason}`);
      }),
    ]);
    const copy = new Y.Doc();
    Y.applyUpdate(copy, step2.update);
    expect(copy.getText('t').length).toBe(edits);
    expect(writer.ws.readyState).toBe(WebSocket.OPEN);
  }, 60_000);

  it('rate-limits pings like any other frame', async () => {
    const f = await start({ maxFramesPerSecond: 5 });
    const flood = await Client.open(`${f.url}/sync?key=alice-key`, true);
    for (let i = 0; i < 50; i++) flood.send({ type: 'ping', nonce: i }, '');
    expect((await flood.closed).code).toBe(4429);
  });

  it('limits the frames of one caller over all its sockets', async () => {
    const f = await start({ maxFramesPerSecond: 1000, maxCallerFramesPerSecond: 5 });
    const sockets = await Promise.all(
      [1, 2, 3].map(() => Client.open(`${f.url}/sync/${NOTES}?key=alice-key`, false)),
    );
    for (const s of sockets)
      for (let i = 0; i < 6; i++) s.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
    const first = await Promise.race(sockets.map((s) => s.closed));
    expect(first.code).toBe(4429);
    const bob = await Client.open(`${f.url}/sync/${NOTES}?key=bob-key`, false);
    bob.send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
    await bob.next('sync-step2');
  });

  it('refuses one socket too many for a caller with HTTP 429, guests counted by address', async () => {
    const f = await start({ maxSocketsPerCaller: 2 });
    const a1 = await Client.open(`${f.url}/sync?key=alice-key`, true);
    await Client.open(`${f.url}/sync/${NOTES}?key=alice-key`, false);
    expect(await upgradeStatus(`${f.url}/sync?key=alice-key`)).toBe(429);
    await Client.open(`${f.url}/sync?key=bob-key`, true);
    await Client.open(`${f.url}/sync`, true);
    await Client.open(`${f.url}/sync`, true);
    expect(await upgradeStatus(`${f.url}/sync`)).toBe(429);
    // A closed socket gives its place back.
    a1.ws.close();
    await a1.closed;
    await expect.poll(() => f.server.connections).toBe(4);
    await Client.open(`${f.url}/sync?key=alice-key`, true);
  });

  it('closes a socket whose awareness grows past its byte bound with 4413', async () => {
    const f = await start({ maxAwarenessBytes: 200 });
    const a = await Client.open(`${f.url}/sync/${NOTES}?key=alice-key`, false);
    a.send({ type: 'awareness', update: awarenessUpdate([{ clientId: 1, clock: 1, state: { n: 'x' } }]) });
    await a.next('awareness');
    a.send({
      type: 'awareness',
      update: awarenessUpdate([{ clientId: 1, clock: 2, state: { n: 'x'.repeat(500) } }]),
    });
    expect((await a.closed).code).toBe(4413);
  });
});
