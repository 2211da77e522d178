import { encodeMuxFrame, type Message, parseDocName, type SubscribeMode } from '@scopesync/core';
import type { SeededRandom } from '@scopesync/testing';
import { type Actor, type Fixture, MAX_FRAME } from './ws-fuzz-fixture.ts';
import {
  encodeFrame,
  malformedYjsUpdate,
  mutateFrame,
  oddYjsUpdate,
  randomAwareness,
  randomText,
  stateVector,
  yjsUpdate,
} from './ws-fuzz-frames.ts';

// The WebSocket fuzzer's frames: document names valid and not, envelopes real and forged, Yjs
// updates ordinary, odd and malformed, messages of every type for both endpoints, and the next
// frame of a session, sent as it is or mutated.

/** A frame to send, and what it is. */
export interface Frame {
  readonly bytes: Uint8Array | string;
  readonly kind: string;
  /** Set for a valid frame sent unmutated. */
  readonly valid: { readonly docName: string | null; readonly message: Message } | null;
}

/** Document names outside the grammar. */
export const INVALID_NAMES = [
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

/** What a session of one socket knows: its caller, its document or subscriptions, its next ref. */
export interface Session {
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
export const ordinary = new Set<string>();

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

/** The next frame of session `s`: a clean subscribe while `opening`, then text, oversized, random, valid or mutated frames. */
export function nextFrame(r: SeededRandom, s: Session, opening: boolean): Frame {
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
