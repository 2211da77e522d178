import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { describe, expect, it } from 'vitest';
import { SyncError } from '../errors.ts';
import { decodeDocFrame, decodeMuxFrame, encodeDocFrame, encodeMuxFrame } from './frame.ts';
import type { Message, YProtocolsMessage } from './message.ts';
import { readMessage, writeMessage, writeSyncUpdate } from './message-codec.ts';
import { DEFAULT_WIRE_LIMITS, type WireLimits } from './wire-limits.ts';

const DOC = 'USER_PUBLIC/user_0123456789abcdef/notes/a.md';
const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

/** One of every message, including edge values (empty payloads, 0 and MAX_SAFE_INTEGER, non-ASCII text). */
const Y_MESSAGES: YProtocolsMessage[] = [
  { type: 'sync-step1', stateVector: bytes(0) },
  { type: 'sync-step1', stateVector: bytes(1, 200, 1, 5) },
  { type: 'sync-step2', update: bytes(0, 0) },
  { type: 'sync-step2', update: new Uint8Array(300).fill(7) },
  { type: 'sync-update', update: bytes(1, 2, 3) },
  { type: 'sync-update', update: new Uint8Array(0) },
  { type: 'awareness', update: bytes(1, 9, 0, 2, 123, 125) },
  { type: 'permission-denied', reason: 'read-only: USER_PUBLIC belongs to its owner' },
  { type: 'permission-denied', reason: '' },
  { type: 'query-awareness' },
];

const OUR_MESSAGES: Message[] = [
  { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 },
  { type: 'subscribe', mode: 'encrypted', sinceSeq: 42, read: 1, write: 1 },
  { type: 'subscribe', mode: 'plaintext', sinceSeq: 0, read: 0 },
  { type: 'subscribe', mode: 'plaintext', sinceSeq: 0, read: 2, write: 0 },
  { type: 'subscribe', mode: 'encrypted', sinceSeq: Number.MAX_SAFE_INTEGER, write: 1 },
  { type: 'permission', access: 'read-write', reason: '' },
  { type: 'permission', access: 'read', reason: 'shared read_only' },
  { type: 'permission', access: 'none', reason: 'share revoked — ünïcödé 🔒' },
  { type: 'permission', access: 'waiting', reason: '' },
  { type: 'unsubscribe' },
  { type: 'ack', ref: 1, seq: 0 },
  { type: 'ack', ref: Number.MAX_SAFE_INTEGER, seq: 123_456_789_012 },
  { type: 'error', ref: 0, kind: 'Forbidden', message: 'subscription ended' },
  { type: 'error', ref: 7, kind: 'TooLarge', message: '' },
  { type: 'tracked-update', ref: 3, update: bytes(1, 1, 1) },
  { type: 'enc-append', ref: 9, envelope: new Uint8Array(1000).fill(0xaa) },
  { type: 'enc-fetch', sinceSeq: 0 },
  { type: 'enc-fetch', sinceSeq: 99 },
  { type: 'enc-entries', headSeq: 0, entries: [] },
  {
    type: 'enc-entries',
    headSeq: 10,
    entries: [
      { seq: 1, envelope: bytes(1) },
      { seq: 4, envelope: new Uint8Array(0) },
      { seq: 10, envelope: bytes(4, 5, 6) },
    ],
  },
  { type: 'enc-snapshot', ref: 2, throughSeq: 17, snapshot: bytes(9, 9) },
  { type: 'ping', nonce: 0 },
  { type: 'ping', nonce: Number.MAX_SAFE_INTEGER },
  { type: 'pong', nonce: 300 },
];

const ALL_MESSAGES: Message[] = [...Y_MESSAGES, ...OUR_MESSAGES];

/** Asserts `fn` throws SyncError('InvalidMessage') and returns its message for further checks. */
function invalidMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SyncError);
    expect((error as SyncError).kind).toBe('InvalidMessage');
    return (error as SyncError).message;
  }
  throw new Error('expected SyncError(InvalidMessage)');
}

function frame(build: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  build(encoder);
  return encoding.toUint8Array(encoder);
}

/** The raw bytes of a mux frame for `docName` whose message part is `body`. */
function muxBytes(body: Uint8Array, docName = DOC): Uint8Array {
  return frame((e) => {
    encoding.writeVarString(e, docName);
    encoding.writeUint8Array(e, body);
  });
}

describe('round trips', () => {
  it('decodes every y-protocols message from the single-document endpoint as it was sent', () => {
    for (const message of Y_MESSAGES) {
      expect(decodeDocFrame(encodeDocFrame(message))).toEqual(message);
    }
  });

  it('decodes every message from the multiplexed endpoint with its doc name', () => {
    for (const message of ALL_MESSAGES) {
      expect(decodeMuxFrame(encodeMuxFrame(DOC, message))).toEqual({ docName: DOC, message });
    }
  });

  it('carries y-protocols messages in mux frames with the same bytes after the doc name', () => {
    for (const message of Y_MESSAGES) {
      expect(encodeMuxFrame(DOC, message)).toEqual(muxBytes(encodeDocFrame(message)));
    }
  });

  it('reads back-to-back messages from one decoder with readMessage', () => {
    const all = frame((e) => {
      for (const message of ALL_MESSAGES) writeMessage(e, message);
    });
    const decoder = decoding.createDecoder(all);
    const read: Message[] = [];
    while (decoding.hasContent(decoder)) read.push(readMessage(decoder));
    expect(read).toEqual(ALL_MESSAGES);
  });

  it('writes the hot-path sync update exactly as writeMessage does', () => {
    const update = bytes(5, 4, 3);
    expect(frame((e) => writeSyncUpdate(e, update))).toEqual(encodeDocFrame({ type: 'sync-update', update }));
  });

  it('returns byte fields that are copies, not views of the frame', () => {
    const encoded = encodeDocFrame({ type: 'sync-update', update: bytes(1, 2, 3) });
    const message = decodeDocFrame(encoded);
    encoded.fill(0);
    expect(message).toEqual({ type: 'sync-update', update: bytes(1, 2, 3) });
    if (message.type !== 'sync-update') throw new Error('unexpected type');
    expect(message.update.byteLength).toBe(message.update.buffer.byteLength);
  });

  it('leaves the doc name raw for the caller to validate', () => {
    expect(decodeMuxFrame(encodeMuxFrame('../../etc/passwd', { type: 'unsubscribe' })).docName).toBe(
      '../../etc/passwd',
    );
    expect(decodeMuxFrame(encodeMuxFrame('', { type: 'unsubscribe' })).docName).toBe('');
  });

  it('puts the numbers of docs/wire-protocol.md on the wire', () => {
    const type = (message: Message): number => {
      const encoded = encodeMuxFrame('', message);
      return decoding.readVarUint(decoding.createDecoder(encoded.subarray(1)));
    };
    const expected: Record<Message['type'], number> = {
      'sync-step1': 0,
      'sync-step2': 0,
      'sync-update': 0,
      awareness: 1,
      'permission-denied': 2,
      'query-awareness': 3,
      subscribe: 100,
      permission: 101,
      unsubscribe: 102,
      ack: 103,
      error: 104,
      'tracked-update': 105,
      'enc-append': 110,
      'enc-fetch': 111,
      'enc-entries': 112,
      'enc-snapshot': 113,
      ping: 114,
      pong: 115,
    };
    for (const message of ALL_MESSAGES) expect(type(message), message.type).toBe(expected[message.type]);
    expect(encodeMuxFrame('', { type: 'subscribe', mode: 'encrypted', sinceSeq: 5 })).toEqual(
      bytes(0, 100, 1, 5, 3, 2),
    );
    expect(
      encodeMuxFrame('', { type: 'subscribe', mode: 'plaintext', sinceSeq: 0, read: 1, write: 0 }),
    ).toEqual(bytes(0, 100, 0, 0, 1, 0));
    // A connection-level ping/pong: the empty doc name, the type, the nonce.
    expect(encodeMuxFrame('', { type: 'ping', nonce: 7 })).toEqual(bytes(0, 114, 7));
    expect(encodeMuxFrame('', { type: 'pong', nonce: 7 })).toEqual(bytes(0, 115, 7));
    expect(encodeMuxFrame('', { type: 'permission', access: 'read-write', reason: '' })).toEqual(
      bytes(0, 101, 2, 0),
    );
    // Appended after read-write: the values a deployed peer knows keep their numbers.
    expect(encodeMuxFrame('', { type: 'permission', access: 'waiting', reason: '' })).toEqual(
      bytes(0, 101, 3, 0),
    );
    expect(encodeMuxFrame('', { type: 'permission', access: 'none', reason: '' })).toEqual(
      bytes(0, 101, 0, 0),
    );
  });
});

describe('readers reject bad input with InvalidMessage', () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ['an empty frame', bytes(), /empty/],
    ['an unknown y-protocols type', bytes(4), /type 4/],
    ['an unknown sync subtype', bytes(0, 3, 0), /sync subtype 3/],
    ['an unknown auth subtype', bytes(2, 1, 0), /auth subtype 1/],
    ['trailing bytes', bytes(3, 0), /trailing/],
    ['a truncated length prefix', bytes(0, 2, 0x80), /truncated/],
    ['a length past the end', bytes(0, 2, 5, 1, 2), /claims 5 bytes but only 2 remain/],
    ['a varUint above MAX_SAFE_INTEGER', bytes(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10), /MAX_SAFE/],
    ['a varUint longer than 8 bytes', bytes(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), /8 bytes/],
    ['a long run of continuation bytes', new Uint8Array(200).fill(0x80), /8 bytes/],
    ['invalid UTF-8 in a reason', bytes(2, 0, 2, 0xc3, 0x28), /UTF-8/],
    ['a lone surrogate in a reason', bytes(2, 0, 3, 0xed, 0xa0, 0x80), /UTF-8/],
  ];
  for (const [what, frameBytes, reason] of cases) {
    it(`rejects ${what} on the single-document endpoint`, () => {
      expect(invalidMessage(() => decodeDocFrame(frameBytes))).toMatch(reason);
    });
  }

  it('rejects our own types on the single-document endpoint', () => {
    for (const message of OUR_MESSAGES) {
      expect(
        invalidMessage(() => decodeDocFrame(encodeMuxFrame(DOC, message).subarray(1 + DOC.length))),
      ).toMatch(/not a y-protocols message/);
    }
    // A stock y-websocket client must never be sent one either.
    invalidMessage(() => encodeDocFrame({ type: 'unsubscribe' } as unknown as YProtocolsMessage));
  });

  const muxCases: [string, Uint8Array, RegExp][] = [
    ['an unknown type below 100', bytes(4), /unknown message type 4/],
    ['an unknown type between ours', bytes(106), /unknown message type 106/],
    ['an unknown type past ours', bytes(116), /unknown message type 116/],
    ['a ping without its nonce', bytes(114), /truncated nonce/],
    ['subscribe mode 2', bytes(100, 2, 0, 3, 2), /mode 2/],
    ['subscribe read flag 4', bytes(100, 0, 0, 4, 2), /read flag 4/],
    ['subscribe write flag 3', bytes(100, 0, 0, 3, 3), /write flag 3/],
    ['a truncated subscribe', bytes(100, 0, 0, 3), /truncated write flag/],
    ['permission access 4', bytes(101, 4, 0), /access 4/],
    ['ack ref 0', bytes(103, 0, 1), /ref must be positive/],
    ['tracked update ref 0', bytes(105, 0, 0), /ref must be positive/],
    ['enc append ref 0', bytes(110, 0, 0), /ref must be positive/],
    ['enc snapshot ref 0', bytes(113, 0, 1, 0), /ref must be positive/],
    [
      'an error kind that is not an ErrorKind',
      frame((e) => {
        encoding.writeVarUint(e, 104);
        encoding.writeVarUint(e, 0);
        encoding.writeVarString(e, 'Teapot');
        encoding.writeVarString(e, '');
      }),
      /error kind "Teapot"/,
    ],
    [
      'an error kind named after an Object prototype key',
      frame((e) => {
        encoding.writeVarUint(e, 104);
        encoding.writeVarUint(e, 0);
        encoding.writeVarString(e, 'toString');
        encoding.writeVarString(e, '');
      }),
      /error kind/,
    ],
    ['enc entries out of order', bytes(112, 5, 2, 3, 0, 2, 0), /out of order/],
    ['enc entries with a repeated seq', bytes(112, 5, 2, 3, 0, 3, 0), /out of order/],
    ['enc entries past headSeq', bytes(112, 5, 1, 6, 0), /out of order/],
    ['enc entries with seq 0', bytes(112, 5, 1, 0, 0), /out of order/],
    ['an entry count the frame cannot hold', bytes(112, 5, 3, 1, 0, 2, 0), /more than the frame can hold/],
    [
      'an entry count of 2^40',
      frame((e) => {
        encoding.writeVarUint(e, 112);
        encoding.writeVarUint(e, 5);
        encoding.writeVarUint(e, 2 ** 40);
      }),
      /exceed the limit/,
    ],
  ];
  for (const [what, body, reason] of muxCases) {
    it(`rejects ${what} on the multiplexed endpoint`, () => {
      expect(invalidMessage(() => decodeMuxFrame(muxBytes(body)))).toMatch(reason);
    });
  }

  it('rejects a doc name with invalid UTF-8 or a bad length', () => {
    expect(invalidMessage(() => decodeMuxFrame(bytes(1, 0xff, 102)))).toMatch(/doc name is not valid UTF-8/);
    expect(invalidMessage(() => decodeMuxFrame(bytes(9, 0x61, 102)))).toMatch(/doc name claims 9 bytes/);
    expect(invalidMessage(() => decodeMuxFrame(bytes(1, 0x61)))).toMatch(/truncated message type/);
  });

  it('rejects every proper prefix of every valid frame as truncated', () => {
    for (const message of ALL_MESSAGES) {
      const whole = encodeMuxFrame(DOC, message);
      for (let end = 0; end < whole.length; end++)
        invalidMessage(() => decodeMuxFrame(whole.subarray(0, end)));
    }
    for (const message of Y_MESSAGES) {
      const whole = encodeDocFrame(message);
      for (let end = 0; end < whole.length; end++)
        invalidMessage(() => decodeDocFrame(whole.subarray(0, end)));
    }
  });

  it('rejects one extra byte after every valid frame', () => {
    for (const message of ALL_MESSAGES) {
      const whole = encodeMuxFrame(DOC, message);
      const longer = new Uint8Array(whole.length + 1);
      longer.set(whole);
      expect(invalidMessage(() => decodeMuxFrame(longer))).toMatch(/1 trailing bytes/);
    }
  });

  it('fails fast on a frame claiming a 2^40-byte update, without allocating it', () => {
    const claim = frame((e) => {
      encoding.writeVarUint(e, 0);
      encoding.writeVarUint(e, 2);
      encoding.writeVarUint(e, 2 ** 40);
      encoding.writeUint8Array(e, bytes(1, 2, 3));
    });
    expect(invalidMessage(() => decodeDocFrame(claim))).toMatch(
      /claims 1099511627776 bytes but only 3 remain/,
    );
  });

  it('never reads past the frame when it is a view into a larger buffer', () => {
    // Node hands out small Buffers as views into one pooled ArrayBuffer: the bytes after the
    // frame belong to someone else. lib0's readVarUint8Array would return them.
    const pool = new Uint8Array(64).fill(0x5a);
    pool.set(bytes(0, 2, 10, 1, 2), 8);
    const view = pool.subarray(8, 13);
    expect(invalidMessage(() => decodeDocFrame(view))).toMatch(/claims 10 bytes but only 2 remain/);
  });

  it('applies the limits it is given', () => {
    const small: WireLimits = { maxFrameBytes: 16, maxStringBytes: 4, maxEntries: 2 };
    const update = encodeDocFrame({ type: 'sync-update', update: new Uint8Array(14) });
    expect(invalidMessage(() => decodeDocFrame(update, small))).toMatch(
      /frame of 17 bytes exceeds the limit of 16/,
    );
    const reason = encodeDocFrame({ type: 'permission-denied', reason: 'abcde' });
    expect(invalidMessage(() => decodeDocFrame(reason, small))).toMatch(/reason is 5 bytes/);
    expect(decodeDocFrame(encodeDocFrame({ type: 'permission-denied', reason: 'abcd' }), small)).toEqual({
      type: 'permission-denied',
      reason: 'abcd',
    });
    expect(
      invalidMessage(() => decodeMuxFrame(encodeMuxFrame('abcde', { type: 'unsubscribe' }), small)),
    ).toMatch(/doc name is 5 bytes/);
    const three = encodeMuxFrame('d', {
      type: 'enc-entries',
      headSeq: 3,
      entries: [1, 2, 3].map((seq) => ({ seq, envelope: new Uint8Array(0) })),
    });
    expect(invalidMessage(() => decodeMuxFrame(three, small))).toMatch(/3 entries exceed the limit of 2/);
    expect(DEFAULT_WIRE_LIMITS).toEqual({
      maxFrameBytes: 16 * 1024 * 1024,
      maxStringBytes: 4096,
      maxEntries: 100_000,
    });
  });

  it('accepts a frame of exactly maxFrameBytes and rejects one byte more', () => {
    const limits: WireLimits = { ...DEFAULT_WIRE_LIMITS, maxFrameBytes: 1000 };
    const exact = encodeDocFrame({ type: 'sync-update', update: new Uint8Array(1000 - 4) });
    expect(exact.length).toBe(1000);
    expect(decodeDocFrame(exact, limits).type).toBe('sync-update');
    const over = encodeDocFrame({ type: 'sync-update', update: new Uint8Array(1000 - 3) });
    invalidMessage(() => decodeDocFrame(over, limits));
  });

  it('rejects input that is not a Uint8Array', () => {
    invalidMessage(() => decodeDocFrame(new ArrayBuffer(2) as unknown as Uint8Array));
    invalidMessage(() => decodeMuxFrame('hello' as unknown as Uint8Array));
    invalidMessage(() => readMessage({ arr: null, pos: 0 } as unknown as decoding.Decoder));
  });
});

describe('writers refuse what readers would reject', () => {
  const bad: [string, Message][] = [
    ['ref 0 in an ack', { type: 'ack', ref: 0, seq: 1 }],
    ['ref 0 in a tracked update', { type: 'tracked-update', ref: 0, update: bytes() }],
    ['a negative seq', { type: 'ack', ref: 1, seq: -1 }],
    ['a fractional sinceSeq', { type: 'enc-fetch', sinceSeq: 1.5 }],
    ['an unsafe integer', { type: 'enc-fetch', sinceSeq: 2 ** 53 }],
    ['an unknown mode', { type: 'subscribe', mode: 'zip', sinceSeq: 0 } as unknown as Message],
    ['read flag 3', { type: 'subscribe', mode: 'plaintext', sinceSeq: 0, read: 3 } as unknown as Message],
    ['write flag 2', { type: 'subscribe', mode: 'plaintext', sinceSeq: 0, write: 2 } as unknown as Message],
    ['an unknown access', { type: 'permission', access: 'admin', reason: '' } as unknown as Message],
    ['an unknown error kind', { type: 'error', ref: 0, kind: 'Oops', message: '' } as unknown as Message],
    [
      'entries out of order',
      {
        type: 'enc-entries',
        headSeq: 5,
        entries: [
          { seq: 2, envelope: bytes() },
          { seq: 1, envelope: bytes() },
        ],
      },
    ],
    ['an entry past headSeq', { type: 'enc-entries', headSeq: 1, entries: [{ seq: 2, envelope: bytes() }] }],
    ['a payload that is not bytes', { type: 'sync-update', update: [1, 2] } as unknown as Message],
    ['an unknown type', { type: 'hello' } as unknown as Message],
  ];
  for (const [what, message] of bad) {
    it(`refuses ${what}`, () => {
      invalidMessage(() => encodeMuxFrame(DOC, message));
    });
  }
});
