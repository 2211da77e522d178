import type * as decoding from 'lib0/decoding';
import * as string from 'lib0/string';
import { isSyncError, SyncError } from '../errors.ts';

/*
 * Readers for untrusted bytes. lib0's own readers trust their input: readVarUint returns
 * values past 2^53 (and NaN after long runs of 0x80), readVarUint8Array builds a view of
 * whatever length a prefix claims — a RangeError at the end of the buffer, or silently the
 * neighbouring bytes when the frame is itself a view into a larger buffer (Node's Buffer
 * pool). These check every length against the bytes that remain *before* touching them.
 */

/** A canonical varUint of a safe integer (< 2^53) takes at most 8 bytes of 7 bits. */
const MAX_VAR_UINT_BYTES = 8;

/** The error every reader failure becomes. */
export function invalid(reason: string, cause?: unknown): SyncError {
  return new SyncError('InvalidMessage', reason, cause === undefined ? undefined : { cause });
}

/** Runs a reader and turns anything it throws that is not already InvalidMessage into InvalidMessage. */
export function guarded<T>(what: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (isSyncError(error, 'InvalidMessage')) throw error;
    throw invalid(`${what}: ${error instanceof Error ? error.message : String(error)}`, error);
  }
}

/** Bytes left in the decoder. */
export function remaining(decoder: decoding.Decoder): number {
  return decoder.arr.length - decoder.pos;
}

/**
 * Reads a varUint of at most 8 bytes whose value is a safe integer. Non-minimal encodings
 * (trailing 0x80 groups) are accepted within those 8 bytes, as lib0 accepts them.
 */
export function readUint(decoder: decoding.Decoder, what: string): number {
  const arr = decoder.arr;
  let num = 0;
  let mult = 1;
  for (let i = 0; i < MAX_VAR_UINT_BYTES; i++) {
    if (decoder.pos >= arr.length) throw invalid(`truncated ${what}`);
    const byte = arr[decoder.pos++] as number;
    num += (byte & 0x7f) * mult;
    if (byte < 0x80) {
      if (num > Number.MAX_SAFE_INTEGER) throw invalid(`${what} exceeds Number.MAX_SAFE_INTEGER`);
      return num;
    }
    mult *= 128;
  }
  throw invalid(`${what} is longer than ${MAX_VAR_UINT_BYTES} bytes`);
}

/** Reads a varUint that must be at least 1 (a request reference). */
export function readPositiveUint(decoder: decoding.Decoder, what: string): number {
  const value = readUint(decoder, what);
  if (value === 0) throw invalid(`${what} must be positive`);
  return value;
}

/** Reads a varUint and checks it is a valid index into `values`, returning that value. */
export function readEnum<T>(decoder: decoding.Decoder, what: string, values: readonly T[]): T {
  const index = readUint(decoder, what);
  const value = values[index];
  if (value === undefined) throw invalid(`${what} ${index} is out of range 0–${values.length - 1}`);
  return value;
}

/** Reads and checks a length prefix, so nothing is sized by a length the bytes cannot back. */
function readLength(decoder: decoding.Decoder, what: string, max: number, unit: string): number {
  const length = readUint(decoder, `${what} length`);
  const left = remaining(decoder);
  if (length > left) throw invalid(`${what} claims ${length} bytes but only ${left} remain`);
  if (length > max) throw invalid(`${what} is ${length} bytes, more than the limit of ${max} ${unit}`);
  return length;
}

/**
 * Reads a varUint8Array of at most `max` bytes. Returns a copy, never a view: the caller may
 * keep it (a store does) without pinning the whole frame or a pooled buffer in memory.
 */
export function readBytes(decoder: decoding.Decoder, what: string, max: number): Uint8Array {
  const length = readLength(decoder, what, max, 'bytes');
  const start = decoder.pos;
  decoder.pos += length;
  // new Uint8Array(view) copies; Buffer#slice would not.
  return new Uint8Array(decoder.arr.subarray(start, start + length));
}

/** Reads a varString of at most `max` UTF-8 bytes, rejecting invalid UTF-8. */
export function readString(decoder: decoding.Decoder, what: string, max: number): string {
  const length = readLength(decoder, what, max, 'bytes (maxStringBytes)');
  const start = decoder.pos;
  decoder.pos += length;
  if (length === 0) return '';
  const bytes = decoder.arr.subarray(start, start + length);
  try {
    // lib0 decodes with a fatal TextDecoder (or decodeURIComponent without one): both throw on bad UTF-8.
    return string.decodeUtf8(bytes);
  } catch (error) {
    throw invalid(`${what} is not valid UTF-8`, error);
  }
}
