import {
  decodeDocFrame,
  decodeMuxFrame,
  encodeDocFrame,
  encodeMuxFrame,
  isSyncError,
  type Message,
  type MuxFrame,
  type WireLimits,
  type YProtocolsMessage,
} from '@scopesync/core';
import type { SeededRandom } from '@scopesync/testing';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as Y from 'yjs';

// Frame building and mutation for test/fuzz-ws.test.ts. A valid frame is encoded with core's
// codecs; structural mutations work on a field model of the same bytes (checked against the
// codec for every frame), byte mutations on the bytes themselves.

/** One field of a frame as the codecs write it: a varUint, or a length-prefixed string or byte array. */
interface WireField {
  readonly kind: 'uint' | 'string' | 'bytes';
  /** The varUint (value, or the payload's length) as it goes on the wire. */
  prefix: Uint8Array;
  /** The value of `prefix` before any mutation. */
  readonly value: number;
  payload: Uint8Array;
}

/**
 * A varUint of `value` (any non-negative number; above 2^53 precision is lost, which is fine for
 * "huge"), padded with non-minimal 0x80 groups to at least `width` bytes.
 */
export function varUint(value: number, width = 1): Uint8Array {
  const out: number[] = [];
  let v = Math.max(0, Math.floor(value));
  do {
    const low = v % 128;
    v = Math.floor(v / 128);
    out.push(low | (v > 0 ? 0x80 : 0));
  } while (v > 0);
  while (out.length < width) {
    out[out.length - 1] = (out[out.length - 1] as number) | 0x80;
    out.push(0);
  }
  return new Uint8Array(out);
}

const utf8 = new TextEncoder();

function uintField(value: number): WireField {
  return { kind: 'uint', prefix: varUint(value), value, payload: new Uint8Array(0) };
}

function blobField(kind: 'string' | 'bytes', payload: Uint8Array): WireField {
  return { kind, prefix: varUint(payload.length), value: payload.length, payload };
}

const TYPE_NUMBERS: Record<Message['type'], number[]> = {
  'sync-step1': [0, 0],
  'sync-step2': [0, 1],
  'sync-update': [0, 2],
  awareness: [1],
  'permission-denied': [2, 0],
  'query-awareness': [3],
  subscribe: [100],
  permission: [101],
  unsubscribe: [102],
  ack: [103],
  error: [104],
  'tracked-update': [105],
  'enc-append': [110],
  'enc-fetch': [111],
  'enc-entries': [112],
  'enc-snapshot': [113],
  ping: [114],
  pong: [115],
};

const ACCESS = ['none', 'read', 'read-write'];

/** The fields of `message` (after the doc name, when `docName` is not null) in wire order. */
function fieldsOf(docName: string | null, message: Message): WireField[] {
  const fields: WireField[] = [];
  const str = (s: string): void => {
    fields.push(blobField('string', utf8.encode(s)));
  };
  const bytes = (b: Uint8Array): void => {
    fields.push(blobField('bytes', b));
  };
  const uint = (n: number): void => {
    fields.push(uintField(n));
  };
  if (docName !== null) str(docName);
  for (const n of TYPE_NUMBERS[message.type]) uint(n);
  switch (message.type) {
    case 'sync-step1':
      bytes(message.stateVector);
      break;
    case 'sync-step2':
    case 'sync-update':
    case 'awareness':
      bytes(message.update);
      break;
    case 'permission-denied':
      str(message.reason);
      break;
    case 'query-awareness':
    case 'unsubscribe':
      break;
    case 'subscribe':
      uint(message.mode === 'plaintext' ? 0 : 1);
      uint(message.sinceSeq);
      uint(message.read ?? 3);
      uint(message.write ?? 2);
      break;
    case 'permission':
      uint(ACCESS.indexOf(message.access));
      str(message.reason);
      break;
    case 'ack':
      uint(message.ref);
      uint(message.seq);
      break;
    case 'error':
      uint(message.ref);
      str(message.kind);
      str(message.message);
      break;
    case 'tracked-update':
    case 'enc-append':
      uint(message.ref);
      bytes(message.type === 'tracked-update' ? message.update : message.envelope);
      break;
    case 'enc-fetch':
      uint(message.sinceSeq);
      break;
    case 'ping':
    case 'pong':
      uint(message.nonce);
      break;
    case 'enc-entries':
      uint(message.headSeq);
      uint(message.entries.length);
      for (const entry of message.entries) {
        uint(entry.seq);
        bytes(entry.envelope);
      }
      break;
    case 'enc-snapshot':
      uint(message.ref);
      uint(message.throughSeq);
      bytes(message.snapshot);
      break;
  }
  return fields;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function join(fields: readonly WireField[]): Uint8Array {
  return concat(fields.flatMap((f) => [f.prefix, f.payload]));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Encodes a valid frame with core's codec: the doc endpoint's when `docName` is null, else the mux one. */
export function encodeFrame(docName: string | null, message: Message): Uint8Array {
  return docName === null ? encodeDocFrame(message as YProtocolsMessage) : encodeMuxFrame(docName, message);
}

/** Values a length or number is replaced with to claim far more than the frame holds. */
const HUGE = [2 ** 14, 2 ** 21, 2 ** 31 - 1, 2 ** 32, 2 ** 48, 2 ** 53 - 1, 2 ** 53, 2 ** 56, 2 ** 63];

const STRUCTURAL = ['inflate', 'huge', 'claim', 'drop', 'dup', 'retype', 'payload', 'number'] as const;
const BYTEWISE = ['flip', 'truncate', 'extend', 'insert', 'delete', 'overwrite'] as const;

/** What {@link mutateFrame} did, for failure messages. */
export type Mutation = (typeof STRUCTURAL)[number] | (typeof BYTEWISE)[number];

/**
 * A mutated copy of the valid frame of `message`: one to three structural mutations of its
 * fields (non-minimal or too-long varUints, huge numbers, length prefixes that claim more or
 * less than follows, dropped/duplicated fields, another type number, other payload bytes)
 * and/or byte mutations (bit flips, truncation, extension, insertion, deletion).
 */
export function mutateFrame(
  r: SeededRandom,
  docName: string | null,
  message: Message,
): { bytes: Uint8Array; mutations: Mutation[] } {
  const fields = fieldsOf(docName, message);
  const valid = encodeFrame(docName, message);
  // The field model must be exactly what the codec writes, or the mutations mean nothing.
  if (!sameBytes(join(fields), valid)) {
    throw new Error(`field model of ${message.type} does not match encodeFrame`);
  }
  const mutations: Mutation[] = [];
  const typeIndex = docName === null ? 0 : 1;
  const structural = r.int(0, 3) > 0 ? r.int(1, 3) : 0;
  for (let i = 0; i < structural && fields.length > 0; i++) {
    const m = r.pick(STRUCTURAL);
    mutations.push(m);
    const at = r.int(0, fields.length - 1);
    const f = fields[at] as WireField;
    switch (m) {
      case 'inflate':
        f.prefix = varUint(f.value, r.int(2, 10));
        break;
      case 'huge':
        f.prefix = varUint(r.pick(HUGE), r.bool() ? 1 : r.int(2, 10));
        break;
      case 'claim':
        f.prefix = varUint(Math.max(0, f.payload.length + r.int(-f.payload.length - 2, 64)));
        break;
      case 'drop':
        fields.splice(at, 1);
        break;
      case 'dup':
        fields.splice(at, 0, { ...f });
        break;
      case 'retype': {
        const t = fields[Math.min(typeIndex, fields.length - 1)] as WireField;
        t.prefix = varUint(
          r.pick([
            0, 1, 2, 3, 4, 5, 99, 100, 101, 102, 103, 104, 105, 106, 110, 111, 112, 113, 114, 115, 116, 127,
            128, 255,
          ]),
        );
        break;
      }
      case 'payload':
        if (f.kind === 'uint') f.prefix = varUint(r.int(0, 300));
        else {
          f.payload = r.bytes(r.int(0, 2 * f.payload.length + 8));
          f.prefix = varUint(f.payload.length);
        }
        break;
      case 'number':
        // A subtype, enum, ref or seq one off its valid range, or 0.
        f.prefix = varUint(r.pick([0, 1, 2, 3, 4, f.value + 1, Math.max(0, f.value - 1), 2 ** 53 - 1]));
        break;
    }
  }
  let bytes = join(fields);
  const bytewise = structural === 0 ? r.int(1, 3) : r.int(0, 1);
  for (let i = 0; i < bytewise; i++) {
    const m = r.pick(BYTEWISE);
    mutations.push(m);
    const at = bytes.length === 0 ? 0 : r.int(0, bytes.length - 1);
    switch (m) {
      case 'flip': {
        bytes = bytes.slice();
        for (let k = r.int(1, 4); k > 0 && bytes.length > 0; k--) {
          const p = r.int(0, bytes.length - 1);
          bytes[p] = (bytes[p] as number) ^ (1 << r.int(0, 7));
        }
        break;
      }
      case 'truncate':
        bytes = bytes.slice(0, at);
        break;
      case 'extend':
        bytes = concat([bytes, r.bytes(r.int(1, 32))]);
        break;
      case 'insert':
        bytes = concat([bytes.slice(0, at), r.bytes(r.int(1, 16)), bytes.slice(at)]);
        break;
      case 'delete':
        bytes = concat([bytes.slice(0, at), bytes.slice(at + r.int(1, 16))]);
        break;
      case 'overwrite':
        bytes = bytes.slice();
        if (bytes.length > 0) bytes[at] = r.pick([0x00, 0x7f, 0x80, 0xff]);
        break;
    }
  }
  return { bytes, mutations };
}

/** What core's reader makes of a frame, with the relay's limits: the message, or why it is malformed. */
export type Decoded =
  | { readonly ok: true; readonly docName: string | null; readonly message: Message }
  | { readonly ok: false; readonly reason: string };

/** Decodes `bytes` as the endpoint would (`mux` true for `/sync`). Anything but InvalidMessage is a bug in core. */
export function decodeFrame(bytes: Uint8Array, mux: boolean, limits: WireLimits): Decoded {
  try {
    if (mux) {
      const frame: MuxFrame = decodeMuxFrame(bytes, limits);
      return { ok: true, docName: frame.docName, message: frame.message };
    }
    return { ok: true, docName: null, message: decodeDocFrame(bytes, limits) };
  } catch (error) {
    if (isSyncError(error, 'InvalidMessage')) return { ok: false, reason: error.message };
    throw error;
  }
}

/** True when the relay's update check (`validateUpdate`: ≥ 2 bytes that decode as a v1 update) passes. */
export function isYjsUpdate(update: Uint8Array): boolean {
  if (update.length < 2) return false;
  try {
    Y.decodeUpdate(update);
    return true;
  } catch {
    return false;
  }
}

/** A fresh Yjs update (v1) from a new client with a seeded client id: one to four edits of many kinds. */
export function yjsUpdate(r: SeededRandom): Uint8Array {
  const doc = new Y.Doc();
  doc.clientID = r.int(1, 0x7fff_ffff);
  const data = doc.getMap('data');
  for (let n = r.int(1, 4); n > 0; n--) {
    switch (r.int(0, 7)) {
      case 0:
        data.set(r.word(1, 6), r.pick([r.int(-5, 1000), r.word(0, 20), true, null, { n: r.int(0, 9) }]));
        break;
      case 1:
        doc.getText('t').insert(0, r.word(1, 30), r.bool() ? { bold: true } : undefined);
        break;
      case 2:
        doc.getArray('a').push([r.int(0, 99), r.word(), new Uint8Array([1, 2])]);
        break;
      case 3:
        data.set(r.word(1, 4), r.bool() ? new Y.Map() : new Y.Array());
        break;
      case 4:
        doc
          .getXmlFragment('x')
          .insert(0, [new Y.XmlElement(r.pick(['p', 'h1', 'ul'])), new Y.XmlText(r.word())]);
        break;
      case 5:
        doc.getText('t').insertEmbed(0, { image: r.word() });
        break;
      case 6:
        data.set('sub', new Y.Doc({ guid: r.word(4, 8) }));
        break;
      default: {
        const text = doc.getText('t');
        text.insert(0, r.word(4, 12));
        text.delete(r.int(0, 2), r.int(1, 2));
      }
    }
  }
  const update = Y.encodeStateAsUpdate(doc);
  doc.destroy();
  return update;
}

/**
 * A Yjs update that decodes (the relay must take it from a writer) but is odd: bit flips that
 * still decode (other clocks, clients, lengths, content), a delete set over ranges nobody
 * wrote with huge lengths, or structs far ahead of any clock (pending forever).
 */
export function oddYjsUpdate(r: SeededRandom): Uint8Array {
  switch (r.int(0, 2)) {
    case 0:
      for (let attempt = 0; attempt < 20; attempt++) {
        const candidate = yjsUpdate(r);
        for (let k = r.int(1, 3); k > 0; k--) {
          const p = r.int(0, candidate.length - 1);
          candidate[p] = (candidate[p] as number) ^ (1 << r.int(0, 7));
        }
        if (isYjsUpdate(candidate)) return candidate;
      }
      return yjsUpdate(r);
    case 1: {
      // No structs; a delete set of one to three clients.
      const parts = [varUint(0)];
      const clients = r.int(1, 3);
      parts.push(varUint(clients));
      for (let c = 0; c < clients; c++) {
        const ranges = r.int(1, 3);
        parts.push(varUint(r.int(0, 0x7fff_ffff)), varUint(ranges));
        for (let i = 0; i < ranges; i++)
          parts.push(varUint(r.pick([0, 1, 2 ** 20])), varUint(r.pick([1, 5, 2 ** 31, 2 ** 40])));
      }
      const update = concat(parts);
      return isYjsUpdate(update) ? update : yjsUpdate(r);
    }
    default: {
      // A real update moved to a clock far ahead: its structs wait for ones that never come.
      const doc = new Y.Doc();
      doc.clientID = r.int(1, 0x7fff_ffff);
      doc.getText('t').insert(0, r.word(1, 10));
      const update = Y.encodeStateAsUpdate(doc);
      doc.destroy();
      // v1 layout: numClients, numStructs, client, clock (0 → replaced).
      const decoder = decoding.createDecoder(update);
      const head = [
        decoding.readVarUint(decoder),
        decoding.readVarUint(decoder),
        decoding.readVarUint(decoder),
      ];
      decoding.readVarUint(decoder);
      const moved = concat([
        ...head.map((n) => varUint(n)),
        varUint(r.pick([1, 1000, 2 ** 32, 2 ** 50])),
        update.subarray(decoder.pos),
      ]);
      return isYjsUpdate(moved) ? moved : yjsUpdate(r);
    }
  }
}

/** A Yjs update the relay must reject as malformed (checked with {@link isYjsUpdate}). */
export function malformedYjsUpdate(r: SeededRandom): Uint8Array {
  for (;;) {
    const base = yjsUpdate(r);
    let candidate: Uint8Array;
    switch (r.int(0, 4)) {
      case 0:
        candidate = r.bytes(r.int(0, 40));
        break;
      case 1:
        candidate = base.slice(0, r.int(0, base.length - 1));
        break;
      case 2: {
        // A v2 update where v1 is expected.
        const doc = new Y.Doc();
        Y.applyUpdate(doc, base);
        candidate = Y.encodeStateAsUpdateV2(doc);
        doc.destroy();
        break;
      }
      case 3:
        candidate = concat([varUint(r.pick(HUGE)), base.slice(1)]);
        break;
      default:
        candidate = base.slice();
        for (let k = r.int(1, 6); k > 0; k--) {
          const p = r.int(0, candidate.length - 1);
          candidate[p] = (candidate[p] as number) ^ (1 << r.int(0, 7));
        }
    }
    if (!isYjsUpdate(candidate)) return candidate;
  }
}

/** A Yjs state vector: a real one, a plausible one with huge clocks, or random bytes. */
export function stateVector(r: SeededRandom): Uint8Array {
  switch (r.int(0, 3)) {
    case 0: {
      const doc = new Y.Doc();
      Y.applyUpdate(doc, yjsUpdate(r));
      const sv = Y.encodeStateVector(doc);
      doc.destroy();
      return sv;
    }
    case 1:
      return new Uint8Array([0]);
    case 2: {
      const encoder = encoding.createEncoder();
      const n = r.int(0, 4);
      encoding.writeVarUint(encoder, n);
      for (let i = 0; i < n; i++) {
        encoding.writeVarUint(encoder, r.int(0, 0x7fff_ffff));
        encoding.writeVarUint(encoder, r.pick([0, 1, 1000, 2 ** 31, 2 ** 40]));
      }
      return encoding.toUint8Array(encoder);
    }
    default:
      return r.bytes(r.int(0, 24));
  }
}

/** One entry of an awareness update: client id, clock and the state's JSON. */
export interface AwarenessEntry {
  readonly clientId: number;
  readonly clock: number;
  readonly json: string;
}

/** Encodes an awareness update (y-protocols `encodeAwarenessUpdate` bytes). */
export function encodeAwareness(entries: readonly AwarenessEntry[]): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, entries.length);
  for (const e of entries) {
    encoding.writeVarUint(encoder, e.clientId);
    encoding.writeVarUint(encoder, e.clock);
    encoding.writeVarString(encoder, e.json);
  }
  return encoding.toUint8Array(encoder);
}

/** The entries of an awareness update the relay sent, or null when it does not decode. */
export function decodeAwareness(update: Uint8Array): AwarenessEntry[] | null {
  try {
    const decoder = decoding.createDecoder(update);
    const out: AwarenessEntry[] = [];
    for (let n = decoding.readVarUint(decoder); n > 0; n--) {
      const clientId = decoding.readVarUint(decoder);
      const clock = decoding.readVarUint(decoder);
      out.push({ clientId, clock, json: decoding.readVarString(decoder) });
    }
    return decoding.hasContent(decoder) ? null : out;
  } catch {
    return null;
  }
}

/** An awareness update from random client ids (never `avoid`): objects, removals, non-objects, non-JSON, forged user ids. */
export function randomAwareness(r: SeededRandom, avoid: number): Uint8Array {
  const entries: AwarenessEntry[] = [];
  for (let n = r.int(0, 3); n > 0; n--) {
    let clientId = r.pick([r.int(0, 20), r.int(0, 0x7fff_ffff), 2 ** 53 - 1]);
    if (clientId === avoid) clientId += 1;
    const json = r.pick([
      JSON.stringify({ user: { name: r.word(), color: '#0f0' }, cursor: r.int(0, 99) }),
      JSON.stringify({ user: { id: 'user_forged', name: 'x' } }),
      JSON.stringify({ user: 'not an object' }),
      'null',
      '[1,2]',
      '"text"',
      '42',
      '{"unterminated":',
      'not json',
      '',
    ]);
    entries.push({ clientId, clock: r.pick([0, 1, r.int(0, 100), 2 ** 32]), json });
  }
  return encodeAwareness(entries);
}

/** Random text for names and reasons: grammar characters, separators and non-ASCII. */
export function randomText(r: SeededRandom, max: number): string {
  const alphabet = 'abcXYZ019._~-/%:@ \\\u00e9\u4e2d\u0000';
  let out = '';
  for (let n = r.int(0, max); n > 0; n--) out += alphabet[r.int(0, alphabet.length - 1)];
  return out;
}

/** Hex of the first `max` bytes, for failure messages. */
export function hex(bytes: Uint8Array, max = 48): string {
  const head = Buffer.from(bytes.subarray(0, max)).toString('hex');
  return bytes.length > max ? `${head}… (${bytes.length} bytes)` : head;
}

/** One client-to-server WebSocket frame (RFC 6455), masked unless told otherwise, with any header bits. */
function wsFrame(
  r: SeededRandom,
  options: {
    fin?: boolean;
    rsv?: number;
    opcode: number;
    payload: Uint8Array;
    masked?: boolean;
    claim?: number;
  },
): Uint8Array {
  const { payload } = options;
  const masked = options.masked ?? true;
  const length = options.claim ?? payload.length;
  const head: number[] = [((options.fin ?? true) ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | options.opcode];
  const maskBit = masked ? 0x80 : 0;
  if (length < 126) head.push(maskBit | length);
  else if (length < 65536) head.push(maskBit | 126, length >> 8, length & 0xff);
  else {
    head.push(maskBit | 127);
    let v = length;
    const bytes: number[] = [];
    for (let i = 0; i < 8; i++) {
      bytes.unshift(v % 256);
      v = Math.floor(v / 256);
    }
    head.push(...bytes);
  }
  const mask = masked ? r.bytes(4) : new Uint8Array(0);
  const body = payload.map((b, i) => (masked ? b ^ (mask[i % 4] as number) : b));
  return concat([new Uint8Array(head), mask, body]);
}

/**
 * Bytes to send on a socket right after a successful upgrade, broken at the WebSocket layer:
 * reserved opcodes and RSV bits, unmasked frames, 2^63-byte lengths, invalid UTF-8 text,
 * bad close codes, stray continuations, fragmented or oversized control frames, raw garbage.
 */
export function brokenWsBytes(r: SeededRandom): { bytes: Uint8Array; kind: string } {
  const frame = (kind: string, bytes: Uint8Array) => ({ bytes, kind });
  const payload = () => r.bytes(r.int(0, 40));
  switch (r.int(0, 11)) {
    case 0:
      return frame(
        'reserved opcode',
        wsFrame(r, { opcode: r.pick([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), payload: payload() }),
      );
    case 1:
      return frame('rsv bits', wsFrame(r, { rsv: r.int(1, 7), opcode: 2, payload: payload() }));
    case 2:
      return frame('unmasked', wsFrame(r, { opcode: 2, payload: payload(), masked: false }));
    case 3:
      return frame(
        'huge length',
        wsFrame(r, { opcode: 2, payload: payload(), claim: r.pick([2 ** 32, 2 ** 53, 2 ** 63]) }),
      );
    case 4:
      return frame(
        'invalid utf-8 text',
        wsFrame(r, { opcode: 1, payload: new Uint8Array([0xc3, 0x28, 0xff, 0xfe]) }),
      );
    case 5: {
      const code = r.pick([0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535]);
      return frame(
        'bad close code',
        wsFrame(r, { opcode: 8, payload: new Uint8Array([code >> 8, code & 0xff]) }),
      );
    }
    case 6:
      return frame('stray continuation', wsFrame(r, { opcode: 0, payload: payload() }));
    case 7:
      return frame('fragmented ping', wsFrame(r, { fin: false, opcode: 9, payload: payload() }));
    case 8:
      return frame('long ping', wsFrame(r, { opcode: 9, payload: r.bytes(r.int(126, 300)) }));
    case 9:
      return frame('one-byte close', wsFrame(r, { opcode: 8, payload: new Uint8Array([3]) }));
    case 10:
      return frame(
        'fragments then text',
        concat([
          wsFrame(r, { fin: false, opcode: 2, payload: payload() }),
          wsFrame(r, { opcode: 1, payload: payload() }),
        ]),
      );
    default:
      return frame('garbage', r.bytes(r.int(1, 200)));
  }
}
