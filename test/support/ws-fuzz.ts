import { connect } from 'node:net';
import {
  DEFAULT_WIRE_LIMITS,
  decodeDocFrame,
  decodeMuxFrame,
  encodeMuxFrame,
  HIDDEN_REASON,
  Level,
  type Message,
  parseDocName,
  SCOPE_FLAGS,
  type SubscribeMode,
  SYSTEM_OWNER,
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
import { type SeededRandom, seededRandom, withSeed } from '@scopesync/testing';
import { expect, vi } from 'vitest';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { type FuzzBackend, type FuzzRelay, startFuzzRelay } from './fuzz-backend.ts';
import { call, enc } from './http-client.ts';
import type { TestRelay } from './start-test-relay.ts';
import {
  brokenWsBytes,
  type Decoded,
  decodeAwareness,
  decodeFrame,
  encodeAwareness,
  encodeFrame,
  hex,
  isYjsUpdate,
  malformedYjsUpdate,
  mutateFrame,
  oddYjsUpdate,
  randomAwareness,
  randomText,
  stateVector,
  yjsUpdate,
} from './ws-fuzz-frames.ts';

// Seeded fuzzing of the WebSocket endpoints of a real relay (on SQLite in fuzz-ws.test.ts, on
// both backends in the chaos suite): /sync/<doc>
// (y-websocket) and /sync (multiplexed). Random bytes, mutated valid frames and well-formed
// frames that must be refused, from a read-only user, a user without keys and a guest. After
// every frame a probe checks the socket: a malformed frame closes that socket alone with 4400
// and a reason (1009 past the frame limit), anything else leaves it open, and the relay never
// logs an internal error. At the end the relay still serves, and no stored byte of the
// documents the fuzzing callers may not write has changed.

/** Sessions run in this many lanes at once. */
const LANES = 2;
/** Sockets broken at the WebSocket layer (bad opcodes, unmasked frames…) after a successful upgrade. */
const BROKEN_SOCKETS = 100;
/** The relay's frame limit, small so that oversized frames are cheap to send. */
const MAX_FRAME = 64 * 1024;
const LIMITS: WireLimits = { ...DEFAULT_WIRE_LIMITS, maxFrameBytes: MAX_FRAME };
const ANSWER_TIMEOUT_MS = 10_000;

let fuzzed: FuzzRelay | undefined;
/** The fixture of the run in progress (one at a time). */
let current: Fixture;
const relayErrors: string[] = [];

// --- callers and documents -----------------------------------------------------------

interface Actor {
  readonly name: 'bob' | 'mallory' | 'guest';
  readonly key: string | undefined;
  readonly userId: string | null;
}

interface Fixture {
  readonly relay: TestRelay;
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

async function seedRelay(r: SeededRandom, backend: FuzzBackend): Promise<Fixture> {
  await ready();
  relayErrors.length = 0;
  fuzzed = await startFuzzRelay(backend, {
    limits: { sync: { maxFrameBytes: MAX_FRAME } },
    // Warnings (a socket closed after a refused frame…) are expected; errors are bugs.
    log: (level, message, context) => {
      if (level === 'error') relayErrors.push(`${message}: ${String(context?.error ?? '')}`);
    },
  });
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

/** Whether `actor` may write `name`: false for every protected or forbidden name, null when it depends. */
function mayWrite(f: Fixture, actor: Actor, name: string): boolean | null {
  if (f.protectedDocs.includes(name) || f.forbiddenNew.includes(name)) return false;
  if (name.startsWith('PUBLIC_RW/')) return true;
  for (const scope of ['USER_PUBLIC', 'USER_PRIVATE']) {
    if (!name.startsWith(`${scope}/`)) continue;
    return actor.userId !== null && name.startsWith(`${scope}/${actor.userId}/`);
  }
  return null;
}

/** Whether `envelope` is one `actor` sealed for `name` itself: no other envelope may ever be stored. */
function sealedBy(f: Fixture, actor: Actor, name: string, envelope: Uint8Array): boolean {
  return (
    actor.name === 'bob' &&
    name === `USER_PRIVATE/${f.bob.userId}/diary` &&
    f.envelopes.some((e) => e.docName === name && Buffer.from(e.bytes).equals(envelope))
  );
}

/** Whether an awareness state the relay sent is a removal or names one of the fuzzing callers as `user.id`. */
function boundToCaller(f: Fixture, json: string): boolean {
  if (json === 'null') return true;
  try {
    const id = (JSON.parse(json) as { user?: { id?: unknown } }).user?.id;
    return f.actors.some((a) => id === (a.userId ?? 'guest'));
  } catch {
    return false;
  }
}

/** Whether `actor` may read `name`: false where a subscription must be refused, null when it depends. */
function mayRead(f: Fixture, actor: Actor, name: string): boolean | null {
  if (name.startsWith(`USER_PRIVATE/${f.alice}/`) || name === `USER_PUBLIC/${f.alice}/draft`) return false;
  if (name === 'blob/alice-enc' || name === 'blob/alice-plain') return actor.name === 'bob';
  if (f.protectedDocs.includes(name)) return true;
  return null;
}

/**
 * Whether `actor`'s single-document socket on `doc` may be closed with 4403 "not found": only
 * bob's on his own USER_PUBLIC document, once he has narrowed its read flag to 0 (a subscribe
 * with flags on a write, his right as owner). Read 0 hides the object from every client, its
 * owner included, and bob could create it were it absent, so his subscription *poses* as one to
 * an absent document (docs/security.md, "Existence"): the first write that carries content ends
 * it as if someone had just created the object, and an open subscription whose document turns
 * hidden is ended the same way, at any frame. The flag is read right after the close: a posing
 * subscription never writes, and the HTTP fuzz runs on a relay of its own, so only a write of
 * bob's racing the re-decision that ends his other subscriptions could widen it again first.
 */
async function hiddenFromOwner(f: Fixture, actor: Actor, doc: string | null): Promise<boolean> {
  const own = `USER_PUBLIC/${f.bob.userId}/own`;
  if (actor.name !== 'bob' || doc !== own) return false;
  const rows = await (fuzzed as FuzzRelay).stored.rows('SELECT read FROM objects WHERE name = ?', own);
  return rows.length === 1 && Number(rows[0]?.[0]) === 0;
}

/**
 * Whether `actor` is answered about `name` as about an absent object it could create
 * (docs/security.md, "Existence"): read-write, an empty document, never anything of it.
 */
function posesAsAbsent(actor: Actor, name: string): boolean {
  return actor.name === 'mallory' && (name === 'blob/alice-enc' || name === 'blob/alice-plain');
}

/** Whether a message about a document carries nothing of it (what an absent document sends). */
function carriesNothing(message: Message): boolean {
  if (message.type === 'sync-step2')
    return message.update.length === 2 && message.update.every((b) => b === 0);
  if (message.type === 'enc-entries') return message.entries.length === 0 && message.headSeq === 0;
  return false;
}

// --- stored data ---------------------------------------------------------------------

interface Stored {
  /** A digest per protected document and per table the sync endpoints must never touch. */
  readonly digests: Record<string, string>;
  /** Every object's owner, by name. */
  readonly objects: ReadonlyMap<string, string>;
  /** Every object's owner and flags (`owner read write encrypted min_epoch`), by name. */
  readonly meta: ReadonlyMap<string, string>;
  readonly docs: ReadonlySet<string>;
}

async function readStored(): Promise<Stored> {
  const stored = (fuzzed as FuzzRelay).stored;
  const digests: Record<string, string> = {};
  for (const name of [...current.protectedDocs, ...current.forbiddenNew]) {
    digests[`object ${name}`] = await stored.digest('SELECT * FROM objects WHERE name = ?', name);
    digests[`blob_data ${name}`] = await stored.digest('SELECT * FROM blob_data WHERE name = ?', name);
    digests[`entries ${name}`] = await stored.digest(
      'SELECT * FROM doc_entries WHERE doc = ? ORDER BY seq',
      name,
    );
    digests[`head ${name}`] = await stored.digest('SELECT * FROM doc_heads WHERE doc = ?', name);
  }
  for (const table of ['users', 'api_keys', 'shares', 'key_grants', 'wrapped_keys', 'mod_grants']) {
    digests[`table ${table}`] = await stored.digest(`SELECT * FROM ${table} ORDER BY 1, 2`);
  }
  const pairs = async (sql: string) =>
    (await stored.rows(sql)).map((row) => [String(row[0]), String(row[1])] as const);
  return {
    digests,
    objects: new Map(await pairs('SELECT name, owner FROM objects')),
    meta: new Map(
      await pairs(
        "SELECT name, owner || ' ' || read || ' ' || write || ' ' || (CASE WHEN encrypted THEN 1 ELSE 0 END) || ' ' || min_epoch FROM objects",
      ),
    ),
    // A document exists once it has an entry; `doc_heads` also names one whose entries were
    // removed (the SQLite store writes that table only then, the PostgreSQL one on every append).
    docs: new Set(
      (await stored.rows('SELECT doc FROM doc_entries UNION SELECT doc FROM doc_heads')).map((row) =>
        String(row[0]),
      ),
    ),
  };
}

/** What the relay serves of each protected document from memory: the Yjs state, or the encrypted log. */
async function served(f: Fixture): Promise<Record<string, string>> {
  const hub = f.relay.relay.hub;
  const out: Record<string, string> = {};
  for (const name of f.protectedDocs) {
    const docName = parseDocName(name).name;
    if (f.encryptedDocs.has(name)) {
      const page = await hub.fetchEncrypted(docName, 0);
      out[name] = `${page.headSeq}:${page.entries.map((e) => `${e.seq}=${hex(e.envelope, 1e6)}`).join(',')}`;
    } else {
      out[name] = await hub.read(docName, (doc) => hex(Y.encodeStateAsUpdate(doc), 1e6));
    }
  }
  return out;
}

// --- sockets -------------------------------------------------------------------------

interface Received {
  readonly docName: string | null;
  readonly message: Message;
}

/** A fuzzing socket: records and decodes what the relay sends, and how it closes. */
class FuzzSocket {
  readonly inbox: Received[] = [];
  closed: { code: number; reason: string } | null = null;
  /** Frames from the relay that core's readers reject: the relay must never send one. */
  readonly garbled: string[] = [];
  #wake: Array<() => void> = [];

  constructor(
    readonly ws: WebSocket,
    readonly mux: boolean,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const bytes = new Uint8Array(data);
      try {
        if (!isBinary) throw new Error('a text frame');
        if (mux) this.inbox.push(decodeMuxFrame(bytes));
        else this.inbox.push({ docName: null, message: decodeDocFrame(bytes) });
      } catch (error) {
        this.garbled.push(`${hex(bytes)}: ${String(error)}`);
      }
      this.#notify();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.#notify();
    });
    ws.on('error', () => undefined);
  }

  #notify(): void {
    for (const wake of this.#wake.splice(0)) wake();
  }

  /** Index of the first frame from `from` on matching `match`; 'closed' when the socket closed first. */
  async until(from: number, match: (f: Received) => boolean, what: string): Promise<number | 'closed'> {
    const deadline = Date.now() + ANSWER_TIMEOUT_MS;
    for (;;) {
      for (let i = from; i < this.inbox.length; i++) if (match(this.inbox[i] as Received)) return i;
      if (this.closed) return 'closed';
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms: ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.ws.close();
    await this.until(this.inbox.length, () => false, 'closing handshake');
  }
}

/** Opens a socket, or resolves with the HTTP status the upgrade was refused with. */
function open(url: string, mux: boolean): Promise<FuzzSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const socket = new FuzzSocket(ws, mux);
    ws.once('open', () => resolve(socket));
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('error', (error) => reject(error));
  });
}

/**
 * The probe of a single-document socket: an awareness update of its own client id with a new
 * clock. The relay echoes accepted awareness to its sender, so the echo marks "every earlier
 * frame is done".
 */
class DocProbe {
  #clock = 0;

  constructor(
    readonly socket: FuzzSocket,
    readonly clientId: number,
  ) {}

  /** Sends the probe; the index of its echo, or 'closed'. */
  probe(): Promise<number | 'closed'> {
    const clock = ++this.#clock;
    const from = this.socket.inbox.length;
    const json = JSON.stringify({ user: { name: 'probe' } });
    const update = encodeAwareness([{ clientId: this.clientId, clock, json }]);
    if (!this.socket.closed) this.socket.ws.send(encodeFrame(null, { type: 'awareness', update }));
    return this.socket.until(
      from,
      (f) =>
        f.message.type === 'awareness' &&
        (decodeAwareness(f.message.update) ?? []).some(
          (e) => e.clientId === this.clientId && e.clock === clock,
        ),
      'the echo of the probe awareness',
    );
  }
}

let probes = 0;

/** The probe of a multiplexed socket: an unsubscribe with an invalid name, always answered with an error. */
function muxProbe(socket: FuzzSocket): Promise<number | 'closed'> {
  const name = `~probe-${++probes}`;
  const from = socket.inbox.length;
  if (!socket.closed) socket.ws.send(encodeMuxFrame(name, { type: 'unsubscribe' }));
  return socket.until(from, (f) => f.docName === name && f.message.type === 'error', 'the probe error');
}

// --- frames --------------------------------------------------------------------------

/** What the relay must do with a frame. */
type Expect =
  | 'open' // process it (or refuse it with an answer) and keep the socket
  | 'close' // close the socket with 4400 and a reason
  | 'maybe-close' // well-formed, content the relay may find malformed: open, or 4400
  | 'too-big'; // over the frame limit: 1009

interface Frame {
  readonly bytes: Uint8Array | string;
  readonly kind: string;
  /** Set for a valid frame sent unmutated. */
  readonly valid: { readonly docName: string | null; readonly message: Message } | null;
}

const INVALID_NAMES = [
  '',
  'nope',
  'USER_PUBLIC',
  'USER_PUBLIC/x',
  'NOPE/_/x',
  'blob/',
  'PUBLIC_RW//x',
  'PUBLIC_RW/_/',
  'PUBLIC_RW/x/y',
  'USER_PUBLIC/user_0000/../x',
  'user_public/_/x',
  `PUBLIC_RW/_/${'x'.repeat(2000)}`,
  'PUBLIC_RW/_/\u0000',
];

const ERROR_KINDS = ['BadRequest', 'Forbidden', 'Internal', 'InvalidMessage'] as const;

interface Session {
  readonly f: Fixture;
  readonly actor: Actor;
  /** The single-document endpoint's doc, or null on /sync. */
  readonly doc: string | null;
  /** Multiplexed: subscribed docs (canonical name) → mode. */
  readonly subs: Map<string, SubscribeMode>;
  readonly requested: Map<string, SubscribeMode>;
  nextRef: number;
  readonly mutateRate: number;
}

function muxNames(f: Fixture): string[] {
  return [
    ...f.protectedDocs,
    ...f.forbiddenNew,
    'PUBLIC_RW/_/board',
    'PUBLIC_RW/_/fuzz',
    `USER_PUBLIC/${f.bob.userId}/own`,
    `USER_PRIVATE/${f.bob.userId}/diary`,
    'blob/fresh-1',
    'blob/fresh-2',
  ];
}

function pickDocName(r: SeededRandom, s: Session): string {
  const roll = r.int(0, 99);
  if (roll < 4) return r.pick(INVALID_NAMES);
  if (roll < 6) return randomText(r, 30);
  if (roll < 70 && s.subs.size > 0) return r.pick([...s.subs.keys()]);
  return r.pick(muxNames(s.f));
}

function envelopeFor(r: SeededRandom, s: Session, docName: string): Uint8Array {
  const roll = r.int(0, 9);
  if (roll < 2) return r.bytes(r.int(0, 300));
  if (roll < 3) return new Uint8Array(r.int(1, 400)).fill(7);
  const own = s.f.envelopes.filter((e) => e.docName === docName);
  return r.pick(own.length > 0 && r.bool() ? own : s.f.envelopes).bytes;
}

function modeFor(r: SeededRandom, s: Session, name: string): SubscribeMode {
  const encrypted = s.f.encryptedDocs.has(name) || name.startsWith('USER_PRIVATE/');
  if (r.int(0, 9) === 0) return encrypted ? 'plaintext' : 'encrypted';
  return encrypted ? 'encrypted' : 'plaintext';
}

/** A Yjs update: mostly ordinary, one in five malformed, one in five odd but decodable. */
function anyUpdate(r: SeededRandom): Uint8Array {
  const roll = r.int(0, 4);
  if (roll === 0) return malformedYjsUpdate(r);
  if (roll === 1) return oddYjsUpdate(r);
  const update = yjsUpdate(r);
  ordinary.add(Buffer.from(update).toString('base64'));
  return update;
}

/** Ordinary updates sent (base64): a writer's must apply. Odd ones may fail to and close the socket with 4400. */
const ordinary = new Set<string>();

/** A well-formed y-protocols message: sync (valid or malformed Yjs inside), awareness, query, permission-denied. */
function yMessage(r: SeededRandom): Message {
  const update = (): Uint8Array => anyUpdate(r);
  switch (r.int(0, 9)) {
    case 0:
    case 1:
      return { type: 'sync-step1', stateVector: stateVector(r) };
    case 2:
      return { type: 'sync-step2', update: update() };
    case 3:
    case 4:
    case 5:
      return { type: 'sync-update', update: update() };
    case 6:
    case 7:
      return { type: 'awareness', update: randomAwareness(r, -1) };
    case 8:
      return { type: 'query-awareness' };
    default:
      return { type: 'permission-denied', reason: randomText(r, 40) };
  }
}

/** A well-formed message for /sync: subscriptions, writes of every kind, and relay-to-client types. */
function muxMessage(r: SeededRandom, s: Session, docName: string): Message {
  const ref = () => (r.int(0, 19) === 0 ? r.pick([1, 2 ** 32, 2 ** 53 - 1]) : s.nextRef++);
  const roll = r.int(0, 99);
  if (roll < (s.subs.size === 0 ? 50 : 12)) {
    const name = (() => {
      try {
        return parseDocName(docName).name;
      } catch {
        return docName;
      }
    })();
    const flags =
      r.int(0, 3) === 0 ? { read: r.pick([0, 1, 2] as const), write: r.pick([0, 1] as const) } : {};
    return {
      type: 'subscribe',
      mode: modeFor(r, s, name),
      sinceSeq: r.pick([0, 0, 1, 5, 2 ** 40]),
      ...flags,
    };
  }
  if (roll < 16) return { type: 'unsubscribe' };
  if (roll < 40) return yMessage(r);
  if (roll < 52) {
    return { type: 'tracked-update', ref: ref(), update: anyUpdate(r) };
  }
  if (roll < 70) return { type: 'enc-append', ref: ref(), envelope: envelopeFor(r, s, docName) };
  if (roll < 76) return { type: 'enc-fetch', sinceSeq: r.pick([0, 1, 2, 1000, 2 ** 53 - 1]) };
  if (roll < 84) {
    return {
      type: 'enc-snapshot',
      ref: ref(),
      throughSeq: r.pick([1, 2, 3, 100, 2 ** 53 - 1]),
      snapshot: envelopeFor(r, s, docName),
    };
  }
  // Relay-to-client messages sent by a client, or a ping naming a document: protocol violations.
  switch (r.int(0, 5)) {
    case 0:
      return { type: 'permission', access: r.pick(['none', 'read', 'read-write'] as const), reason: '' };
    case 1:
      return { type: 'ack', ref: r.int(1, 9), seq: r.int(0, 9) };
    case 2:
      return { type: 'error', ref: r.int(0, 9), kind: r.pick(ERROR_KINDS), message: randomText(r, 20) };
    case 3:
      return { type: 'pong', nonce: r.int(0, 9) };
    case 4:
      return { type: 'ping', nonce: r.int(0, 9) };
    default:
      return { type: 'enc-entries', headSeq: 3, entries: [{ seq: 1, envelope: r.bytes(r.int(0, 40)) }] };
  }
}

function nextFrame(r: SeededRandom, s: Session, opening: boolean): Frame {
  const mux = s.doc === null;
  if (opening) {
    // A clean subscribe to start a multiplexed session with, so that later frames reach writes.
    const docName = r.pick(muxNames(s.f));
    const message: Message = { type: 'subscribe', mode: modeFor(r, s, docName), sinceSeq: 0 };
    return { bytes: encodeFrame(docName, message), kind: 'valid subscribe', valid: { docName, message } };
  }
  const roll = r.int(0, 999);
  if (roll < 8) return { bytes: randomText(r, 40), kind: 'text', valid: null };
  if (roll < 16) {
    // Over the limit: garbage, or a well-formed frame with a huge update.
    const size = MAX_FRAME + r.int(1, 4096);
    const bytes = r.bool()
      ? r.bytes(size)
      : encodeFrame(mux ? 'PUBLIC_RW/_/board' : null, { type: 'sync-update', update: r.bytes(size) });
    return { bytes, kind: 'oversize', valid: null };
  }
  if (roll < 60) {
    let bytes = r.bytes(r.pick([0, 1, 2, 3, r.int(4, 64), r.int(64, 2048)]));
    if (mux && r.bool())
      bytes = Buffer.concat([encodeMuxFrame(pickDocName(r, s), { type: 'unsubscribe' }).slice(0, -1), bytes]);
    return { bytes, kind: 'random', valid: null };
  }
  // Now and then the connection-level liveness probe, under the empty doc name.
  const ping = mux && roll < 80;
  const docName = mux ? (ping ? '' : pickDocName(r, s)) : null;
  const message: Message = ping
    ? { type: 'ping', nonce: r.pick([0, 1, 2 ** 32, 2 ** 53 - 1]) }
    : mux
      ? muxMessage(r, s, docName as string)
      : yMessage(r);
  if (r.next() < s.mutateRate) {
    const { bytes, mutations } = mutateFrame(r, docName, message);
    return { bytes, kind: `mutated ${message.type} (${mutations.join(', ')})`, valid: null };
  }
  return { bytes: encodeFrame(docName, message), kind: `valid ${message.type}`, valid: { docName, message } };
}

/** What the relay must do with `frame` on `s`, judged by core's reader and what the session knows. */
function expectationOf(s: Session, frame: Frame, decoded: Decoded | null): Expect {
  if (typeof frame.bytes === 'string') return 'close';
  if (frame.bytes.length > MAX_FRAME) return 'too-big';
  if (!decoded?.ok) return 'close';
  const { message } = decoded;
  if (['permission', 'ack', 'error', 'enc-entries', 'pong'].includes(message.type)) return 'close';
  // A ping is answered at once when connection-level (the empty doc name), and malformed otherwise.
  if (message.type === 'ping') return decoded.docName === '' ? 'open' : 'close';
  let mode: SubscribeMode = 'plaintext';
  let name = s.doc as string;
  if (decoded.docName !== null) {
    try {
      name = parseDocName(decoded.docName).name;
    } catch {
      return 'open'; // answered with an error
    }
    if (message.type === 'subscribe' || message.type === 'unsubscribe') return 'open';
    const sub = s.subs.get(name);
    if (sub === undefined) return 'open'; // "not subscribed"
    mode = sub;
  }
  switch (message.type) {
    case 'sync-step1':
      return mode === 'plaintext' ? 'maybe-close' : 'open';
    case 'sync-step2':
    case 'sync-update':
      if (mode !== 'plaintext') return 'open'; // refused: the subscription is encrypted
      if (!isYjsUpdate(message.update)) return 'close';
      // A writer's odd update may decode yet fail to integrate: 4400 too.
      return mayWrite(s.f, s.actor, name) === false ||
        ordinary.has(Buffer.from(message.update).toString('base64'))
        ? 'open'
        : 'maybe-close';
    case 'awareness':
      return 'maybe-close';
    default:
      return 'open';
  }
}

// --- the fuzz ------------------------------------------------------------------------

interface Stats {
  frames: number;
  docFrames: number;
  muxFrames: number;
  sessions: number;
  upgradesRefused: number;
  readonly kinds: Map<string, number>;
  readonly closes: Map<number, number>;
  refusalsAnswered: number;
  permissionDenied: number;
  acks: number;
  /** Bob's sockets on his own document closed with 4403 after he hid it from himself (read 0). */
  hiddenFromOwner: number;
  readonly broken: Map<string, number>;
}

function bump(map: Map<string | number, number>, key: string | number): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** Upgrades that must be refused before the socket opens. */
async function refusedUpgrades(r: SeededRandom, f: Fixture, stats: Stats): Promise<void> {
  const bob = f.bob.key as string;
  const cases: Array<[string, number]> = [
    [`/sync/${f.protectedDocs[0]}?key=${bob}`, 403],
    [`/sync/${enc(`USER_PUBLIC/${f.alice}/draft`)}?key=${bob}`, 403],
    [`/sync/USER_PRIVATE/${f.alice}/notes`, 403],
    ['/sync/blob/alice-plain', 403],
    [`/sync/blob/alice-enc?key=${bob}`, 400],
    [`/sync/PUBLIC_RW/_/board?key=${r.word(10, 40)}`, 401],
    [`/sync?key=${r.word(10, 40)}`, 401],
    [`/sync/${enc(r.pick(INVALID_NAMES.slice(1, 8)))}`, 400],
    ['/sync/blob%2F..', 400],
  ];
  const [path, status] = r.pick(cases);
  const answer = await open(`${f.relay.wsUrl}${path}`, false);
  if (typeof answer !== 'number') await answer.close();
  expect(answer, `upgrade ${path}`).toBe(status);
  stats.upgradesRefused += 1;
}

/** One socket of one lane: frames until the relay closes it or the session ends. Resolves with the frames sent. */
async function runSession(
  r: SeededRandom,
  f: Fixture,
  stats: Stats,
  lane: number,
  budget: number,
): Promise<number> {
  const actor = r.pick(f.actors);
  const mux = r.bool();
  const readable = [
    'PUBLIC_RW/_/board',
    'PUBLIC_RW/_/fuzz',
    `USER_PUBLIC/${f.alice}/profile`,
    'PUBLIC_READ/_/news',
    'PUBLIC_READ/_/rules',
    'SERVER_SCOPE/_/config',
    `USER_PUBLIC/${f.bob.userId}/own`,
    ...(actor.name === 'bob' ? ['blob/alice-plain'] : []),
  ];
  const doc = mux ? null : r.pick(readable);
  const query = actor.key === undefined ? '' : `?key=${actor.key}`;
  const path = mux ? '/sync' : `/sync/${r.bool() ? doc : enc(doc as string)}`;
  const opened = await open(`${f.relay.wsUrl}${path}${query}`, mux);
  if (opened === 403 && doc === `USER_PUBLIC/${f.bob.userId}/own` && actor.name !== 'bob') {
    // Bob may have narrowed his own document's read flag (subscribe flags on a write): his right.
    // Bob himself is let in even at read 0: posing, since he could create it (hiddenFromOwner).
    stats.upgradesRefused += 1;
    return 0;
  }
  expect(opened, `upgrade of ${path} as ${actor.name}`).toBeInstanceOf(FuzzSocket);
  const socket = opened as FuzzSocket;
  const s: Session = {
    f,
    actor,
    doc,
    subs: new Map(),
    requested: new Map(),
    nextRef: 1,
    mutateRate: r.pick([0.1, 0.3, 0.5]),
  };
  const docProbe = mux ? null : new DocProbe(socket, r.int(1, 0x7fff_ffff));
  stats.sessions += 1;
  const length = Math.min(budget, r.int(1, 60));
  const opening = mux ? r.int(0, 3) : 0;
  let seen = socket.inbox.length;
  let sent = 0;

  for (let i = 0; i < length; i++) {
    const frame = nextFrame(r, s, i < opening);
    const decoded = typeof frame.bytes === 'string' ? null : decodeFrame(frame.bytes, mux, LIMITS);
    const expected = expectationOf(s, frame, decoded);
    const context = () =>
      `lane ${lane} session ${stats.sessions} (${actor.name} on ${doc ?? '/sync'}), frame ${stats.frames}: ${frame.kind}, expected ${expected}, ` +
      `${typeof frame.bytes === 'string' ? JSON.stringify(frame.bytes) : hex(frame.bytes)}` +
      (decoded?.ok
        ? ` = ${decoded.docName ?? ''} ${decoded.message.type}`
        : decoded
          ? ` (${decoded.reason})`
          : '');
    if (decoded?.ok && decoded.docName !== null) {
      const { message } = decoded;
      try {
        const name = parseDocName(decoded.docName).name;
        if (message.type === 'subscribe') s.requested.set(name, message.mode);
        if (message.type === 'unsubscribe') s.subs.delete(name);
      } catch {
        // answered with an error
      }
    }
    const errorsBefore = relayErrors.length;
    const from = socket.inbox.length;
    socket.ws.send(frame.bytes, { binary: typeof frame.bytes !== 'string' });
    stats.frames += 1;
    sent += 1;
    if (mux) stats.muxFrames += 1;
    else stats.docFrames += 1;
    bump(stats.kinds, frame.kind.split(' ')[0] as string);
    const answer = docProbe ? await docProbe.probe() : await muxProbe(socket);
    const check = (ok: boolean, what: () => string): void => {
      if (!ok) throw new Error(`${what()}, after ${context()}`);
    };
    check(
      relayErrors.length === errorsBefore,
      () => `the relay logged ${relayErrors.slice(errorsBefore).join('; ')}`,
    );
    check(
      socket.garbled.length === 0,
      () => `the relay sent frames core cannot read: ${socket.garbled.join('; ')}`,
    );

    // What came back before the probe's answer.
    const between = socket.inbox.slice(from, answer === 'closed' ? undefined : answer);
    for (const got of socket.inbox.slice(seen)) {
      const name = got.docName === null ? doc : got.docName;
      if (name === null || name.startsWith('~probe-')) continue;
      let canonical: string;
      try {
        canonical = parseDocName(name).name;
      } catch {
        continue;
      }
      const writable = mayWrite(f, actor, canonical);
      const { message } = got;
      const posing = posesAsAbsent(actor, canonical);
      if (['sync-step2', 'sync-update', 'enc-entries', 'awareness'].includes(message.type)) {
        check(
          // Posing: an empty document, and the presence of fellow posers (checked below: callers only).
          mayRead(f, actor, canonical) !== false ||
            (posing && (carriesNothing(message) || message.type === 'awareness')),
          () => `${message.type} of ${canonical} sent to ${actor.name}`,
        );
      }
      if (message.type === 'ack') {
        stats.acks += 1;
        check(
          writable !== false || (posing && message.seq === 0),
          () => `an ack for ${canonical}, which ${actor.name} may not write`,
        );
      }
      if (message.type === 'permission') {
        if (message.access === 'read-write') {
          check(writable !== false || posing, () => `read-write access to ${canonical} for ${actor.name}`);
        }
        // Waiting (absent or hidden) grants nothing: frames about it are answered as unsubscribed.
        if (message.access === 'read' || message.access === 'read-write') {
          check(
            mayRead(f, actor, canonical) !== false || (posing && message.access === 'read-write'),
            () => `access to ${canonical} for ${actor.name}`,
          );
          s.subs.set(canonical, s.requested.get(canonical) ?? 'plaintext');
        } else s.subs.delete(canonical);
      }
      if (message.type === 'error' && message.ref === 0) s.subs.delete(canonical);
      if (message.type === 'permission-denied') stats.permissionDenied += 1;
      if (message.type === 'awareness') {
        // Awareness is bound to the authenticated caller: every state names a real caller.
        for (const entry of decodeAwareness(message.update) ?? []) {
          check(
            boundToCaller(f, entry.json),
            () => `awareness state ${entry.json.slice(0, 200)} was relayed`,
          );
          // A posing subscription hears only its fellow posers (here: mallory), never the real room.
          if (posing) {
            check(
              entry.json === 'null' || entry.json.includes(`"${actor.userId}"`),
              () => `awareness state ${entry.json.slice(0, 200)} reached posing ${actor.name}`,
            );
          }
        }
      }
    }
    seen = socket.inbox.length;

    if (answer === 'closed') {
      const closed = socket.closed as { code: number; reason: string };
      bump(stats.closes, closed.code);
      const closedWith = () => `the relay closed the socket with ${closed.code} "${closed.reason}"`;
      if (closed.code === 4403 && closed.reason === HIDDEN_REASON && (await hiddenFromOwner(f, actor, doc))) {
        stats.hiddenFromOwner += 1;
        return sent;
      }
      if (expected === 'too-big') check(closed.code === 1009, closedWith);
      else check(expected !== 'open' && closed.code === 4400 && closed.reason !== '', closedWith);
      return sent;
    }
    check(expected === 'open' || expected === 'maybe-close', () => 'the relay kept the socket open');

    // A connection-level ping is answered with its nonce, before the relay processes the next frame.
    if (decoded?.ok && decoded.message.type === 'ping') {
      const { nonce } = decoded.message;
      check(
        between.some((g) => g.docName === '' && g.message.type === 'pong' && g.message.nonce === nonce),
        () => 'no pong for a ping',
      );
      continue;
    }

    // Refusals the relay must answer, before it processes the next frame.
    if (decoded?.ok) {
      const { message, docName } = decoded;
      let canonical: string | null = null;
      try {
        canonical = docName === null ? doc : parseDocName(docName).name;
      } catch {
        check(
          between.some(
            (g) => g.docName === docName && g.message.type === 'error' && g.message.kind === 'BadRequest',
          ),
          () => 'no BadRequest for an invalid doc name',
        );
        stats.refusalsAnswered += 1;
      }
      if (canonical !== null && docName !== null) {
        const answered = (match: (m: Message) => boolean) =>
          between.some((g) => g.docName === canonical && match(g.message));
        if (
          (message.type === 'tracked-update' ||
            message.type === 'enc-append' ||
            message.type === 'enc-snapshot') &&
          (mayWrite(f, actor, canonical) === false ||
            (message.type !== 'tracked-update' &&
              !sealedBy(
                f,
                actor,
                canonical,
                message.type === 'enc-append' ? message.envelope : message.snapshot,
              )))
        ) {
          check(
            answered((m) => m.type === 'error' && m.ref === message.ref),
            () => 'no error for a refused write',
          );
          stats.refusalsAnswered += 1;
        }
        if (
          message.type === 'subscribe' &&
          mayRead(f, actor, canonical) === false &&
          !posesAsAbsent(actor, canonical)
        ) {
          check(
            answered(
              // An absent or hidden document waits; either way nothing of it is sent.
              (m) =>
                (m.type === 'permission' && (m.access === 'none' || m.access === 'waiting')) ||
                (m.type === 'error' && m.ref === 0),
            ),
            () => 'no refusal of a subscription',
          );
          stats.refusalsAnswered += 1;
        }
      }
      if (
        docName === null &&
        frame.valid !== null &&
        (message.type === 'sync-update' || message.type === 'sync-step2') &&
        ordinary.has(Buffer.from(message.update).toString('base64')) &&
        mayWrite(f, actor, doc as string) === false
      ) {
        check(
          between.some((g) => g.message.type === 'permission-denied'),
          () => 'no permission-denied for a read-only write',
        );
        stats.refusalsAnswered += 1;
      }
    }
  }
  await socket.close();
  return sent;
}

/**
 * Upgrades a raw TCP socket to a sync endpoint, then sends bytes broken at the WebSocket layer.
 * The relay (its ws server) must drop the socket; raw garbage may merely look like the start
 * of a long frame, so that one is given up after a moment.
 */
async function brokenWebSocket(r: SeededRandom, f: Fixture, stats: Stats): Promise<void> {
  const { bytes, kind } = brokenWsBytes(r);
  const actor = r.pick(f.actors);
  const path = `${r.bool() ? '/sync' : '/sync/PUBLIC_RW/_/board'}${actor.key === undefined ? '' : `?key=${actor.key}`}`;
  const port = Number(new URL(f.relay.url).port);
  const closedByRelay = await new Promise<boolean>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let head = '';
    let upgraded = false;
    const timer = setTimeout(
      () => {
        socket.destroy();
        resolve(false);
      },
      kind === 'garbage' ? 100 : ANSWER_TIMEOUT_MS,
    );
    socket.on('connect', () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${Buffer.from(r.bytes(16)).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) return;
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      if (!head.startsWith('HTTP/1.1 101'))
        reject(new Error(`upgrade of ${path} refused: ${head.split('\r\n')[0]}`));
      upgraded = true;
      socket.write(bytes);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(upgraded);
    });
    socket.on('error', () => undefined);
  });
  if (kind !== 'garbage')
    expect(closedByRelay, `the relay kept a socket open after ${kind}: ${hex(bytes)}`).toBe(true);
  bump(stats.broken, kind);
}

/** A stock y-websocket client: resolves once synced. */
function provider(f: Fixture, name: string, key?: string) {
  const doc = new Y.Doc();
  const p = new WebsocketProvider(`${f.relay.wsUrl}/sync`, name, doc, {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    params: key === undefined ? {} : { key },
    disableBc: true,
  });
  const synced = new Promise<void>((resolve) => {
    const onSync = (isSynced: boolean): void => {
      if (!isSynced) return;
      p.off('sync', onSync);
      resolve();
    };
    p.on('sync', onSync);
  });
  return { doc, p, synced };
}

/** What one WebSocket fuzz run did. */
export interface WsFuzzStats {
  readonly frames: number;
  readonly brokenSockets: number;
}

/**
 * Sends `frames` seeded random, mutated and refused frames (plus {@link BROKEN_SOCKETS} sockets
 * broken at the WebSocket layer) to a fresh relay on `backend`, checking after every frame;
 * closes the relay. Fails (with the seed) on a check that does not hold. Call inside a test.
 */
export async function runWsFuzz(options: {
  readonly backend: FuzzBackend;
  readonly seed: number;
  readonly frames: number;
  /** Sockets broken at the WebSocket layer (default {@link BROKEN_SOCKETS}). */
  readonly brokenSockets?: number;
}): Promise<WsFuzzStats> {
  const brokenSockets = options.brokenSockets ?? BROKEN_SOCKETS;
  const FRAMES = options.frames;
  const seed = options.seed;
  try {
    return await withSeed(`fuzz-ws (${options.backend})`, seed, async (r) => {
      const f = await seedRelay(r, options.backend);
      current = f;
      const storedBefore = await readStored();
      const servedBefore = await served(f);
      for (const name of f.protectedDocs) {
        expect(storedBefore.digests[`object ${name}`], name).toMatch(/^1 rows/);
        expect(storedBefore.digests[`entries ${name}`], name).not.toMatch(/^0 rows/);
      }

      // A bystander on another document: its socket must outlive every fuzzing one.
      const bystander = (await open(`${f.relay.wsUrl}/sync/PUBLIC_RW/_/control`, false)) as FuzzSocket;
      const bystanderProbe = new DocProbe(bystander, 7);
      expect(await bystanderProbe.probe()).not.toBe('closed');

      const stats: Stats = {
        frames: 0,
        docFrames: 0,
        muxFrames: 0,
        sessions: 0,
        upgradesRefused: 0,
        kinds: new Map(),
        closes: new Map(),
        refusalsAnswered: 0,
        permissionDenied: 0,
        acks: 0,
        hiddenFromOwner: 0,
        broken: new Map(),
      };
      const started = Date.now();
      // Lanes of sessions side by side, so sockets also race each other on shared documents.
      // Each lane has its own generator (seeded from this seed) and frame budget.
      let failed = false;
      const lanes = Array.from({ length: LANES }, () => r.int(0, 0xffff_ffff));
      const results = await Promise.allSettled(
        lanes.map(async (laneSeed, lane) => {
          const lr = seededRandom(laneSeed);
          try {
            for (let sent = 0; sent < FRAMES / LANES && !failed; ) {
              if (lr.int(0, 24) === 0) await refusedUpgrades(lr, f, stats);
              sent += await runSession(lr, f, stats, lane, FRAMES / LANES - sent);
            }
          } catch (error) {
            failed = true;
            throw error;
          }
        }),
      );
      for (const result of results) if (result.status === 'rejected') throw result.reason;
      for (let i = 0; i < brokenSockets; i++) await brokenWebSocket(r, f, stats);
      const elapsed = Date.now() - started;

      // Still serving: health, the bystander, stock clients on a fresh doc and on fuzzed ones.
      expect((await call(f.relay.url, 'GET', '/health')).status).toBe(200);
      expect(bystander.closed).toBe(null);
      expect(await bystanderProbe.probe()).not.toBe('closed');
      const a = provider(f, 'PUBLIC_RW/_/control-after');
      const b = provider(f, 'PUBLIC_RW/_/control-after');
      const fuzzed = provider(f, 'PUBLIC_RW/_/board');
      const reader = provider(f, `USER_PUBLIC/${f.alice}/profile`, f.bob.key);
      try {
        await Promise.all([a.synced, b.synced, fuzzed.synced, reader.synced]);
        a.doc.getText('t').insert(0, 'still syncing');
        await new Promise<void>((resolve) => {
          const check = () => {
            if (b.doc.getText('t').toString() !== 'still syncing') return;
            b.doc.off('update', check);
            resolve();
          };
          b.doc.on('update', check);
          check();
        });
        expect(reader.doc.getMap('data').get('name')).toBe('Ada');
      } finally {
        for (const x of [a, b, fuzzed, reader]) x.p.destroy();
        await bystander.close();
      }
      // Every socket closed: none left behind half-open by a refused frame.
      await vi.waitFor(() => expect(f.relay.relay.syncServer.connections).toBe(0), { timeout: 5000 });
      // Writers' frames took effect: the fuzz exercised the write path, not only refusals.
      if (FRAMES >= 10_000)
        expect(await f.relay.relay.hub.head(parseDocName('PUBLIC_RW/_/board').name)).toBeGreaterThan(10);

      // Nothing the fuzzing callers may not write changed, on disk or in memory.
      await f.relay.relay.hub.flush();
      const storedAfter = await readStored();
      expect(storedAfter.digests).toEqual(storedBefore.digests);
      expect(await served(f)).toEqual(servedBefore);
      const writers = f.actors.flatMap((x) => (x.userId === null ? [] : [x.userId]));
      // New documents: PUBLIC_RW ones, the fuzzing users' own, and new blobs they own.
      const legitimate = (name: string): boolean =>
        name.startsWith('PUBLIC_RW/') ||
        (name.startsWith('blob/') && writers.includes(storedAfter.objects.get(name) ?? '')) ||
        writers.some((u) => name.startsWith(`USER_PUBLIC/${u}/`) || name.startsWith(`USER_PRIVATE/${u}/`));
      // Only an owner (or an admin) sets an object's flags: nobody changed those of others' objects,
      // and PUBLIC_RW objects, old or new, have the scope's defaults.
      for (const [name, meta] of storedBefore.meta) {
        if (!writers.includes(storedBefore.objects.get(name) ?? '')) {
          expect(storedAfter.meta.get(name), `owner and flags of ${name}`).toBe(meta);
        }
      }
      const { read, write } = SCOPE_FLAGS.PUBLIC_RW.defaults;
      for (const [name, meta] of storedAfter.meta) {
        if (name.startsWith('PUBLIC_RW/'))
          expect(meta, `flags of ${name}`).toBe(`${SYSTEM_OWNER} ${read} ${write} 0 0`);
      }
      const created = [...storedAfter.objects.keys(), ...storedAfter.docs].filter(
        (n) => !storedBefore.objects.has(n) && !storedBefore.docs.has(n),
      );
      expect(
        created.filter((n) => !legitimate(n)),
        'documents created by callers who may not',
      ).toEqual([]);
      expect((await f.relay.relay.runtime.verifyAudit()).ok).toBe(true);
      expect(relayErrors).toEqual([]);

      console.log(
        `fuzz-ws (${options.backend}) seed ${seed}: ${stats.frames} frames (${stats.docFrames} /sync/<doc>, ${stats.muxFrames} /sync) ` +
          `in ${stats.sessions} sessions, ${elapsed} ms; kinds ${JSON.stringify(Object.fromEntries(stats.kinds))}; ` +
          `closes ${JSON.stringify(Object.fromEntries(stats.closes))}; refusals answered ${stats.refusalsAnswered}, ` +
          `permission-denied ${stats.permissionDenied}, acks ${stats.acks}, upgrades refused ${stats.upgradesRefused}, ` +
          `own document hidden from its owner ${stats.hiddenFromOwner}, ` +
          `broken sockets ${JSON.stringify(Object.fromEntries(stats.broken))}`,
      );

      // The fuzz reached every path, not only the first reader check (floors set for 10,000
      // frames; a short run, like the chaos suite's in `npm test`, checks only the rest).
      const count = (k: string) => stats.kinds.get(k) ?? 0;
      expect(stats.frames).toBeGreaterThanOrEqual(FRAMES);
      if (FRAMES >= 10_000) {
        expect(stats.docFrames).toBeGreaterThan(FRAMES / 4);
        expect(stats.muxFrames).toBeGreaterThan(FRAMES / 4);
        expect(stats.closes.get(4400) ?? 0).toBeGreaterThan(500);
        expect(stats.closes.get(1009) ?? 0).toBeGreaterThan(10);
        expect(stats.refusalsAnswered).toBeGreaterThan(300);
        expect(stats.permissionDenied).toBeGreaterThan(20);
        expect(stats.acks).toBeGreaterThan(5);
        expect(stats.upgradesRefused).toBeGreaterThan(20);
        expect(count('valid') + count('mutated')).toBeGreaterThan(FRAMES / 2);
      }
      return { frames: stats.frames, brokenSockets };
    });
  } finally {
    await fuzzed?.close();
    fuzzed = undefined;
  }
}
