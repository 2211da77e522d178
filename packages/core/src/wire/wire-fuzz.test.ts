import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as prng from 'lib0/prng';
import { describe, expect, it } from 'vitest';
import { ErrorKind, isSyncError } from '../errors.ts';
import { decodeDocFrame, decodeMuxFrame, encodeDocFrame, encodeMuxFrame } from './frame.ts';
import type { EncEntry, Message } from './message.ts';
import { isYProtocolsMessage } from './message-codec.ts';
import { DOC_ACCESS_LEVELS, SUBSCRIBE_MODES } from './message-type.ts';

/*
 * Seeded fuzzing of both frame decoders. Whatever the bytes, a decoder either returns a
 * message that survives a re-encode unchanged, or throws SyncError('InvalidMessage');
 * anything else (a RangeError, a TypeError, a hang on a huge length) is a bug a peer could
 * use to crash the relay. Replay a failure with SCOPESYNC_SEED=<seed>.
 */

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
const SEED = seedFromEnv(env?.SCOPESYNC_SEED);
const ITERATIONS = 10_000;

function seedFromEnv(value: string | undefined): number {
  if (value === undefined || value === '') return Math.floor(Math.random() * 2 ** 31);
  const seed = Number(value);
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new Error(`SCOPESYNC_SEED must be a non-negative integer, got ${value}`);
  return seed;
}

const hex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

const UINTS = [
  0,
  1,
  2,
  127,
  128,
  255,
  16_383,
  16_384,
  2 ** 31 - 1,
  2 ** 32,
  2 ** 40,
  Number.MAX_SAFE_INTEGER,
];
const TYPES = [0, 1, 2, 3, 100, 101, 102, 103, 104, 105, 110, 111, 112, 113, 114, 115];

function uint(gen: prng.PRNG): number {
  return prng.bool(gen) ? prng.int31(gen, 0, 300) : prng.oneOf(gen, UINTS);
}

function positive(gen: prng.PRNG): number {
  return Math.max(1, uint(gen));
}

function payload(gen: prng.PRNG): Uint8Array {
  // Mostly short, sometimes past 127 bytes so that length prefixes take two bytes.
  return prng.uint8Array(
    gen,
    prng.int31(gen, 0, 10) === 0 ? prng.int31(gen, 128, 400) : prng.int31(gen, 0, 24),
  );
}

function text(gen: prng.PRNG): string {
  return prng.oneOf(gen, ['', 'denied', 'ünïcödé 🔒', prng.utf16String(gen, 30)]);
}

function entries(gen: prng.PRNG): { headSeq: number; entries: EncEntry[] } {
  const list: EncEntry[] = [];
  let seq = 0;
  for (let n = prng.int31(gen, 0, 5); n > 0; n--) {
    seq += prng.int31(gen, 1, 200);
    list.push({ seq, envelope: payload(gen) });
  }
  return { headSeq: seq + prng.int31(gen, 0, 3), entries: list };
}

/** A random valid message of any type. */
function randomMessage(gen: prng.PRNG): Message {
  const kinds = Object.values(ErrorKind);
  switch (prng.int31(gen, 0, 17)) {
    case 0:
      return { type: 'sync-step1', stateVector: payload(gen) };
    case 1:
      return { type: 'sync-step2', update: payload(gen) };
    case 2:
      return { type: 'sync-update', update: payload(gen) };
    case 3:
      return { type: 'awareness', update: payload(gen) };
    case 4:
      return { type: 'permission-denied', reason: text(gen) };
    case 5:
      return { type: 'query-awareness' };
    case 6: {
      const read = prng.oneOf(gen, [0, 1, 2, undefined] as const);
      const write = prng.oneOf(gen, [0, 1, undefined] as const);
      return {
        type: 'subscribe',
        mode: prng.oneOf(gen, [...SUBSCRIBE_MODES]),
        sinceSeq: uint(gen),
        ...(read === undefined ? {} : { read }),
        ...(write === undefined ? {} : { write }),
      };
    }
    case 7:
      return { type: 'permission', access: prng.oneOf(gen, [...DOC_ACCESS_LEVELS]), reason: text(gen) };
    case 8:
      return { type: 'unsubscribe' };
    case 9:
      return { type: 'ack', ref: positive(gen), seq: uint(gen) };
    case 10:
      return { type: 'error', ref: uint(gen), kind: prng.oneOf(gen, kinds), message: text(gen) };
    case 11:
      return { type: 'tracked-update', ref: positive(gen), update: payload(gen) };
    case 12:
      return { type: 'enc-append', ref: positive(gen), envelope: payload(gen) };
    case 13:
      return { type: 'enc-fetch', sinceSeq: uint(gen) };
    case 14:
      return { type: 'enc-entries', ...entries(gen) };
    case 15:
      return { type: 'ping', nonce: uint(gen) };
    case 16:
      return { type: 'pong', nonce: uint(gen) };
    default:
      return { type: 'enc-snapshot', ref: positive(gen), throughSeq: uint(gen), snapshot: payload(gen) };
  }
}

function randomValidFrame(gen: prng.PRNG, mux: boolean): Uint8Array {
  let message = randomMessage(gen);
  if (mux) return encodeMuxFrame(prng.oneOf(gen, ['', 'PUBLIC_RW/_/guestbook', text(gen)]), message);
  while (!isYProtocolsMessage(message)) message = randomMessage(gen);
  return encodeDocFrame(message);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function varUint(value: number): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, value);
  return encoding.toUint8Array(encoder);
}

/** Replaces the varUint at a random position by a larger one: inflates a length prefix when it hits one. */
function inflateVarUint(gen: prng.PRNG, frame: Uint8Array): Uint8Array {
  const at = prng.int31(gen, 0, frame.length - 1);
  const decoder = decoding.createDecoder(frame.subarray(at));
  let value: number;
  try {
    value = decoding.readVarUint(decoder);
  } catch {
    return frame;
  }
  const bigger = value + prng.oneOf(gen, [1, 2, 127, 2 ** 14, 2 ** 31, 2 ** 40, 2 ** 52]);
  return concat(frame.subarray(0, at), varUint(bigger), frame.subarray(at + decoder.pos));
}

function mutate(gen: prng.PRNG, frame: Uint8Array): Uint8Array {
  let out = frame;
  for (let n = prng.int31(gen, 1, 3); n > 0; n--) {
    if (out.length === 0) return prng.uint8Array(gen, prng.int31(gen, 1, 8));
    const at = prng.int31(gen, 0, out.length - 1);
    switch (prng.int31(gen, 0, 5)) {
      case 0: {
        out = out.slice();
        out[at] = (out[at] as number) ^ (1 << prng.int31(gen, 0, 7));
        break;
      }
      case 1:
        out = out.slice(0, at);
        break;
      case 2:
        out = concat(out, prng.uint8Array(gen, prng.int31(gen, 1, 8)));
        break;
      case 3:
        out = inflateVarUint(gen, out);
        break;
      case 4:
        // An overlong or overflowing varUint spliced in: a run of continuation bytes.
        out = concat(
          out.subarray(0, at),
          new Uint8Array(prng.int31(gen, 1, 12)).fill(0xff),
          out.subarray(at),
        );
        break;
      default: {
        out = out.slice();
        out[at] = prng.int31(gen, 0, 255);
        break;
      }
    }
  }
  return out;
}

/** Runs one input through both decoders; returns a description of the first contract violation. */
function check(frame: Uint8Array): string | null {
  const decoders: [string, (bytes: Uint8Array) => Message][] = [
    ['decodeDocFrame', (bytes) => decodeDocFrame(bytes)],
    ['decodeMuxFrame', (bytes) => decodeMuxFrame(bytes).message],
  ];
  for (const [name, decode] of decoders) {
    let message: Message;
    try {
      message = decode(frame);
    } catch (error) {
      if (isSyncError(error, 'InvalidMessage')) continue;
      return `${name} threw ${String(error)}`;
    }
    // What a reader accepts, the writer writes, and it reads back the same.
    try {
      const again =
        name === 'decodeDocFrame'
          ? decodeDocFrame(reencodeDoc(message))
          : decodeMuxFrame(encodeMuxFrame('d', message)).message;
      const first = encodeMuxFrame('d', message);
      const second = encodeMuxFrame('d', again);
      if (hex(first) !== hex(second)) return `${name}: re-encoding changed the message`;
    } catch (error) {
      return `${name}: a decoded message did not re-encode: ${String(error)}`;
    }
  }
  return null;
}

function reencodeDoc(message: Message): Uint8Array {
  if (!isYProtocolsMessage(message)) throw new Error('decodeDocFrame returned a non-y-protocols message');
  return encodeDocFrame(message);
}

function fuzz(label: string, makeFrame: (gen: prng.PRNG) => Uint8Array): { decoded: number } {
  const gen = prng.create(SEED);
  let decoded = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const frame = makeFrame(gen);
    const failure = check(frame);
    if (failure !== null) {
      throw new Error(
        `${label}: ${failure}\n  seed ${SEED} (replay with SCOPESYNC_SEED=${SEED}), iteration ${i}, frame ${hex(frame)}`,
      );
    }
    try {
      decodeMuxFrame(frame);
      decoded++;
    } catch {
      // Rejection is the common case; check() already verified it was InvalidMessage.
    }
  }
  return { decoded };
}

describe(`wire fuzzing (seed ${SEED})`, () => {
  it(`decodes ${ITERATIONS} random byte frames without anything but InvalidMessage`, () => {
    fuzz('random bytes', (gen) => prng.uint8Array(gen, prng.int31(gen, 0, 64)));
  });

  it(`decodes ${ITERATIONS} random frames with a plausible header without anything but InvalidMessage`, () => {
    fuzz('random with header', (gen) => {
      const header = prng.bool(gen)
        ? new Uint8Array(0)
        : encoding.encode((e) => encoding.writeVarString(e, text(gen)));
      return concat(header, varUint(prng.oneOf(gen, TYPES)), prng.uint8Array(gen, prng.int31(gen, 0, 40)));
    });
  });

  it(`decodes ${ITERATIONS} mutated valid frames without anything but InvalidMessage`, () => {
    const { decoded } = fuzz('mutated frames', (gen) => mutate(gen, randomValidFrame(gen, prng.bool(gen))));
    // Payload mutations keep a frame valid: the fuzzer reaches the end of real messages.
    expect(decoded, `seed ${SEED}`).toBeGreaterThan(0);
  });

  it(`round-trips ${ITERATIONS} random valid messages on both endpoints`, () => {
    const gen = prng.create(SEED);
    for (let i = 0; i < ITERATIONS; i++) {
      const message = randomMessage(gen);
      const context = `seed ${SEED} (replay with SCOPESYNC_SEED=${SEED}), iteration ${i}`;
      expect(decodeMuxFrame(encodeMuxFrame('x', message)), context).toEqual({ docName: 'x', message });
      if (isYProtocolsMessage(message))
        expect(decodeDocFrame(encodeDocFrame(message)), context).toEqual(message);
    }
  });

  it('rejects huge claimed lengths in every length-prefixed field without allocating them', () => {
    const claim = varUint(2 ** 40);
    const tail = new Uint8Array([1, 2, 3]);
    const frames = [
      concat(new Uint8Array([0, 0]), claim, tail),
      concat(new Uint8Array([0, 1]), claim, tail),
      concat(new Uint8Array([0, 2]), claim, tail),
      concat(new Uint8Array([1]), claim, tail),
      concat(new Uint8Array([2, 0]), claim, tail),
    ];
    const muxBodies = [
      concat(new Uint8Array([101, 0]), claim, tail),
      concat(new Uint8Array([104, 0]), claim, tail),
      concat(new Uint8Array([105, 1]), claim, tail),
      concat(new Uint8Array([110, 1]), claim, tail),
      concat(new Uint8Array([112, 9, 1, 1]), claim, tail),
      concat(new Uint8Array([113, 1, 1]), claim, tail),
    ];
    for (const frame of frames) {
      expect(() => decodeDocFrame(frame)).toThrow(/claims 1099511627776 bytes but only 3 remain/);
      expect(() => decodeMuxFrame(concat(new Uint8Array([0]), frame))).toThrow(/claims 1099511627776 bytes/);
    }
    for (const body of muxBodies) {
      expect(() => decodeMuxFrame(concat(new Uint8Array([0]), body))).toThrow(/claims 1099511627776 bytes/);
    }
    expect(() => decodeMuxFrame(concat(claim, tail))).toThrow(/doc name claims 1099511627776 bytes/);
  });
});
