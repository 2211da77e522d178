import { SyncError } from '@scopesync/core';
import { checkLength, checkU32, concatBytes, fromHex, readU32, toHex, utf8, writeU32 } from './bytes.ts';
import { sodium } from './sodium.ts';

// Per-author history of an encrypted document. Every envelope names its stream (8 random bytes
// one device picks per document), a counter (1, 2, … within that stream) and the hash of the
// stream's previous envelope. A clock lists, per stream, the last counter and envelope hash
// someone has seen; snapshots carry the clock they cover and members sign their heads with it.
//
// Clock layout (integers big-endian):   N (u32) ‖ N × (stream 8 ‖ author key 32 ‖ counter u32 ‖ hash 32)

/** Bytes of a stream id. */
export const STREAM_ID_BYTES = 8;
/** Bytes of an envelope hash. */
export const ENVELOPE_HASH_BYTES = 32;
const AUTHOR_KEY_BYTES = 32;
const ENTRY_BYTES = STREAM_ID_BYTES + AUTHOR_KEY_BYTES + 4 + ENVELOPE_HASH_BYTES;
const HASH_DOMAIN = utf8('scopesync:envelope-hash:v2\0');

/** Where one author stream stands: its last counter and the hash of the envelope that has it. */
export interface StreamHead {
  /** The stream id, 16 lowercase hex characters. */
  readonly stream: string;
  /** The Ed25519 key that signs the stream's envelopes. */
  readonly authorKey: Uint8Array;
  readonly counter: number;
  readonly hash: Uint8Array;
}

/** BLAKE2b-256 of a whole envelope: what the next envelope of its stream chains to. Requires `ready()`. */
export function envelopeHash(envelope: Uint8Array): Uint8Array {
  return sodium().crypto_generichash(ENVELOPE_HASH_BYTES, concatBytes(HASH_DOMAIN, envelope), null);
}

/** A fresh random stream id (hex). Requires `ready()`. */
export function newStreamId(): string {
  return toHex(sodium().randombytes_buf(STREAM_ID_BYTES));
}

/** Encodes a clock, its streams sorted so equal clocks encode equally. */
export function encodeClock(heads: readonly StreamHead[]): Uint8Array {
  const sorted = [...heads].sort((a, b) => (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0));
  const out = new Uint8Array(4 + sorted.length * ENTRY_BYTES);
  writeU32(out, 0, sorted.length);
  let at = 4;
  for (const head of sorted) {
    out.set(checkLength(fromHex(head.stream, 'stream id'), STREAM_ID_BYTES, 'stream id'), at);
    out.set(checkLength(head.authorKey, AUTHOR_KEY_BYTES, 'author key'), at + STREAM_ID_BYTES);
    writeU32(out, at + STREAM_ID_BYTES + AUTHOR_KEY_BYTES, checkU32(head.counter, 'counter'));
    out.set(
      checkLength(head.hash, ENVELOPE_HASH_BYTES, 'envelope hash'),
      at + ENTRY_BYTES - ENVELOPE_HASH_BYTES,
    );
    at += ENTRY_BYTES;
  }
  return out;
}

/** Decodes a clock at `offset`; returns it and the offset after it. BadRequest when malformed. */
export function decodeClock(bytes: Uint8Array, offset: number): { heads: StreamHead[]; end: number } {
  if (bytes.length < offset + 4) throw new SyncError('BadRequest', 'malformed clock: truncated');
  const count = readU32(bytes, offset);
  const end = offset + 4 + count * ENTRY_BYTES;
  if (count > 1_000_000 || bytes.length < end)
    throw new SyncError('BadRequest', 'malformed clock: truncated');
  const heads: StreamHead[] = [];
  for (let at = offset + 4; at < end; at += ENTRY_BYTES) {
    heads.push({
      stream: toHex(bytes.subarray(at, at + STREAM_ID_BYTES)),
      authorKey: bytes.slice(at + STREAM_ID_BYTES, at + STREAM_ID_BYTES + AUTHOR_KEY_BYTES),
      counter: readU32(bytes, at + STREAM_ID_BYTES + AUTHOR_KEY_BYTES),
      hash: bytes.slice(at + ENTRY_BYTES - ENVELOPE_HASH_BYTES, at + ENTRY_BYTES),
    });
  }
  return { heads, end };
}
