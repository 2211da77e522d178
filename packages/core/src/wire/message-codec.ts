import type * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { type ErrorKind, isErrorKind } from '../errors.ts';
import type { ReadFlag, WriteFlag } from '../rules.ts';
import {
  guarded,
  invalid,
  readBytes,
  readEnum,
  readPositiveUint,
  readString,
  readUint,
  remaining,
} from './guarded-reads.ts';
import type { EncEntry, Message, ScopesyncMessage, YProtocolsMessage } from './message.ts';
import {
  AuthMessageType,
  DOC_ACCESS_LEVELS,
  type DocAccess,
  KEEP_READ_FLAG,
  KEEP_WRITE_FLAG,
  MessageType,
  SUBSCRIBE_MODES,
  type SubscribeMode,
  SyncMessageType,
} from './message-type.ts';
import { DEFAULT_WIRE_LIMITS, type WireLimits } from './wire-limits.ts';

/*
 * One writer per message (each writes the whole message, type first) and one reader for
 * all of them. Writers check what they are given and throw InvalidMessage rather than put
 * bytes on the wire that a reader would reject: lib0 would silently write garbage for a
 * negative or fractional number.
 */

const READ_FLAGS: readonly ReadFlag[] = [0, 1, 2];
const WRITE_FLAGS: readonly WriteFlag[] = [0, 1];

function checkUint(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw invalid(`cannot write ${what} ${String(value)}: not a non-negative safe integer`);
  }
}

function checkRef(ref: number, what = 'ref'): void {
  checkUint(ref, what);
  if (ref === 0) throw invalid(`cannot write ${what} 0: it must be positive`);
}

function checkBytes(value: Uint8Array, what: string): void {
  if (!(value instanceof Uint8Array)) throw invalid(`cannot write ${what}: not a Uint8Array`);
}

function checkString(value: string, what: string): void {
  if (typeof value !== 'string') throw invalid(`cannot write ${what}: not a string`);
}

function wireIndex<T>(values: readonly T[], value: T, what: string): number {
  const index = values.indexOf(value);
  if (index < 0) throw invalid(`cannot write ${what} ${String(value)}: not one of ${values.join(', ')}`);
  return index;
}

/** Writes a y-protocols SyncStep1 carrying a Yjs state vector. */
export function writeSyncStep1(encoder: encoding.Encoder, stateVector: Uint8Array): void {
  checkBytes(stateVector, 'state vector');
  encoding.writeVarUint(encoder, MessageType.Sync);
  encoding.writeVarUint(encoder, SyncMessageType.Step1);
  encoding.writeVarUint8Array(encoder, stateVector);
}

/** Writes a y-protocols SyncStep2 carrying a Yjs update (v1). */
export function writeSyncStep2(encoder: encoding.Encoder, update: Uint8Array): void {
  checkBytes(update, 'update');
  encoding.writeVarUint(encoder, MessageType.Sync);
  encoding.writeVarUint(encoder, SyncMessageType.Step2);
  encoding.writeVarUint8Array(encoder, update);
}

/** Writes a y-protocols sync update carrying a Yjs update (v1). The hot path of live editing. */
export function writeSyncUpdate(encoder: encoding.Encoder, update: Uint8Array): void {
  checkBytes(update, 'update');
  encoding.writeVarUint(encoder, MessageType.Sync);
  encoding.writeVarUint(encoder, SyncMessageType.Update);
  encoding.writeVarUint8Array(encoder, update);
}

/** Writes a y-protocols awareness message carrying an encoded awareness update. */
export function writeAwareness(encoder: encoding.Encoder, update: Uint8Array): void {
  checkBytes(update, 'awareness update');
  encoding.writeVarUint(encoder, MessageType.Awareness);
  encoding.writeVarUint8Array(encoder, update);
}

/** Writes a y-protocols auth/permission-denied message with its reason. */
export function writePermissionDenied(encoder: encoding.Encoder, reason: string): void {
  checkString(reason, 'reason');
  encoding.writeVarUint(encoder, MessageType.Auth);
  encoding.writeVarUint(encoder, AuthMessageType.PermissionDenied);
  encoding.writeVarString(encoder, reason);
}

/** Writes a y-websocket query-awareness message. */
export function writeQueryAwareness(encoder: encoding.Encoder): void {
  encoding.writeVarUint(encoder, MessageType.QueryAwareness);
}

/** Writes a subscribe; an absent `read`/`write` flag means keep the object's flags (scope default on create). */
export function writeSubscribe(
  encoder: encoding.Encoder,
  mode: SubscribeMode,
  sinceSeq: number,
  read?: ReadFlag,
  write?: WriteFlag,
): void {
  const modeValue = wireIndex(SUBSCRIBE_MODES, mode, 'subscribe mode');
  checkUint(sinceSeq, 'sinceSeq');
  const readValue = read === undefined ? KEEP_READ_FLAG : wireIndex(READ_FLAGS, read, 'read flag');
  const writeValue = write === undefined ? KEEP_WRITE_FLAG : wireIndex(WRITE_FLAGS, write, 'write flag');
  encoding.writeVarUint(encoder, MessageType.Subscribe);
  encoding.writeVarUint(encoder, modeValue);
  encoding.writeVarUint(encoder, sinceSeq);
  encoding.writeVarUint(encoder, readValue);
  encoding.writeVarUint(encoder, writeValue);
}

/** Writes a permission message: the caller's access to the document and why ("" when granted). */
export function writePermission(encoder: encoding.Encoder, access: DocAccess, reason: string): void {
  const accessValue = wireIndex(DOC_ACCESS_LEVELS, access, 'access');
  checkString(reason, 'reason');
  encoding.writeVarUint(encoder, MessageType.Permission);
  encoding.writeVarUint(encoder, accessValue);
  encoding.writeVarString(encoder, reason);
}

/** Writes an unsubscribe. */
export function writeUnsubscribe(encoder: encoding.Encoder): void {
  encoding.writeVarUint(encoder, MessageType.Unsubscribe);
}

/** Writes an ack: request `ref` (positive) is durably stored as entry `seq`. */
export function writeAck(encoder: encoding.Encoder, ref: number, seq: number): void {
  checkRef(ref);
  checkUint(seq, 'seq');
  encoding.writeVarUint(encoder, MessageType.Ack);
  encoding.writeVarUint(encoder, ref);
  encoding.writeVarUint(encoder, seq);
}

/** Writes an error about request `ref` (0 when not about a request) with an ErrorKind and a message. */
export function writeError(encoder: encoding.Encoder, ref: number, kind: ErrorKind, message: string): void {
  checkUint(ref, 'ref');
  if (!isErrorKind(kind)) throw invalid(`cannot write error kind ${String(kind)}: not an ErrorKind`);
  checkString(message, 'error message');
  encoding.writeVarUint(encoder, MessageType.Error);
  encoding.writeVarUint(encoder, ref);
  encoding.writeVarString(encoder, kind);
  encoding.writeVarString(encoder, message);
}

/** Writes a tracked update: a Yjs update (v1) the relay acks under the positive `ref`. */
export function writeTrackedUpdate(encoder: encoding.Encoder, ref: number, update: Uint8Array): void {
  checkRef(ref);
  checkBytes(update, 'update');
  encoding.writeVarUint(encoder, MessageType.TrackedUpdate);
  encoding.writeVarUint(encoder, ref);
  encoding.writeVarUint8Array(encoder, update);
}

/** Writes an enc append: one encrypted envelope, acked under the positive `ref` with its seq. */
export function writeEncAppend(encoder: encoding.Encoder, ref: number, envelope: Uint8Array): void {
  checkRef(ref);
  checkBytes(envelope, 'envelope');
  encoding.writeVarUint(encoder, MessageType.EncAppend);
  encoding.writeVarUint(encoder, ref);
  encoding.writeVarUint8Array(encoder, envelope);
}

/** Writes an enc fetch: asks for the encrypted log entries after `sinceSeq`. */
export function writeEncFetch(encoder: encoding.Encoder, sinceSeq: number): void {
  checkUint(sinceSeq, 'sinceSeq');
  encoding.writeVarUint(encoder, MessageType.EncFetch);
  encoding.writeVarUint(encoder, sinceSeq);
}

/** Writes enc entries: `entries` in strictly increasing seq order (each ≥ 1 and ≤ `headSeq`). */
export function writeEncEntries(
  encoder: encoding.Encoder,
  headSeq: number,
  entries: readonly EncEntry[],
): void {
  checkUint(headSeq, 'headSeq');
  if (!Array.isArray(entries)) throw invalid('cannot write entries: not an array');
  let previous = 0;
  for (const entry of entries) {
    checkUint(entry.seq, 'entry seq');
    if (entry.seq <= previous || entry.seq > headSeq) {
      throw invalid(
        `cannot write entry seq ${entry.seq}: seqs must increase from 1 up to headSeq ${headSeq}`,
      );
    }
    checkBytes(entry.envelope, 'envelope');
    previous = entry.seq;
  }
  encoding.writeVarUint(encoder, MessageType.EncEntries);
  encoding.writeVarUint(encoder, headSeq);
  encoding.writeVarUint(encoder, entries.length);
  for (const entry of entries) {
    encoding.writeVarUint(encoder, entry.seq);
    encoding.writeVarUint8Array(encoder, entry.envelope);
  }
}

/** Writes an enc snapshot replacing the log through `throughSeq`, acked under the positive `ref`. */
export function writeEncSnapshot(
  encoder: encoding.Encoder,
  ref: number,
  throughSeq: number,
  snapshot: Uint8Array,
): void {
  checkRef(ref);
  checkUint(throughSeq, 'throughSeq');
  checkBytes(snapshot, 'snapshot');
  encoding.writeVarUint(encoder, MessageType.EncSnapshot);
  encoding.writeVarUint(encoder, ref);
  encoding.writeVarUint(encoder, throughSeq);
  encoding.writeVarUint8Array(encoder, snapshot);
}

/** Writes a ping: a connection-level liveness probe carrying a client-chosen `nonce`. */
export function writePing(encoder: encoding.Encoder, nonce: number): void {
  checkUint(nonce, 'nonce');
  encoding.writeVarUint(encoder, MessageType.Ping);
  encoding.writeVarUint(encoder, nonce);
}

/** Writes a pong: the answer to a ping, echoing its `nonce`. */
export function writePong(encoder: encoding.Encoder, nonce: number): void {
  checkUint(nonce, 'nonce');
  encoding.writeVarUint(encoder, MessageType.Pong);
  encoding.writeVarUint(encoder, nonce);
}

/** Writes any message, type first. Throws InvalidMessage for a message no reader would accept. */
export function writeMessage(encoder: encoding.Encoder, message: Message): void {
  switch (message.type) {
    case 'sync-step1':
      writeSyncStep1(encoder, message.stateVector);
      return;
    case 'sync-step2':
      writeSyncStep2(encoder, message.update);
      return;
    case 'sync-update':
      writeSyncUpdate(encoder, message.update);
      return;
    case 'awareness':
      writeAwareness(encoder, message.update);
      return;
    case 'permission-denied':
      writePermissionDenied(encoder, message.reason);
      return;
    case 'query-awareness':
      writeQueryAwareness(encoder);
      return;
    case 'subscribe':
      writeSubscribe(encoder, message.mode, message.sinceSeq, message.read, message.write);
      return;
    case 'permission':
      writePermission(encoder, message.access, message.reason);
      return;
    case 'unsubscribe':
      writeUnsubscribe(encoder);
      return;
    case 'ack':
      writeAck(encoder, message.ref, message.seq);
      return;
    case 'error':
      writeError(encoder, message.ref, message.kind, message.message);
      return;
    case 'tracked-update':
      writeTrackedUpdate(encoder, message.ref, message.update);
      return;
    case 'enc-append':
      writeEncAppend(encoder, message.ref, message.envelope);
      return;
    case 'enc-fetch':
      writeEncFetch(encoder, message.sinceSeq);
      return;
    case 'enc-entries':
      writeEncEntries(encoder, message.headSeq, message.entries);
      return;
    case 'enc-snapshot':
      writeEncSnapshot(encoder, message.ref, message.throughSeq, message.snapshot);
      return;
    case 'ping':
      writePing(encoder, message.nonce);
      return;
    case 'pong':
      writePong(encoder, message.nonce);
      return;
    default:
      // A plain-JS caller can pass anything; never let it reach the wire.
      throw invalid(`cannot write unknown message type ${String((message as { type?: unknown }).type)}`);
  }
}

/** True for the y-protocols messages (types 0–3), the only ones the single-document endpoint carries. */
export function isYProtocolsMessage(message: Message): message is YProtocolsMessage {
  switch (message.type) {
    case 'sync-step1':
    case 'sync-step2':
    case 'sync-update':
    case 'awareness':
    case 'permission-denied':
    case 'query-awareness':
      return true;
    default:
      return false;
  }
}

function readSync(decoder: decoding.Decoder, limits: WireLimits): YProtocolsMessage {
  const subtype = readUint(decoder, 'sync subtype');
  switch (subtype) {
    case SyncMessageType.Step1:
      return { type: 'sync-step1', stateVector: readBytes(decoder, 'state vector', limits.maxFrameBytes) };
    case SyncMessageType.Step2:
      return { type: 'sync-step2', update: readBytes(decoder, 'update', limits.maxFrameBytes) };
    case SyncMessageType.Update:
      return { type: 'sync-update', update: readBytes(decoder, 'update', limits.maxFrameBytes) };
    default:
      throw invalid(`unknown sync subtype ${subtype}`);
  }
}

function readEncEntries(decoder: decoding.Decoder, limits: WireLimits): ScopesyncMessage {
  const headSeq = readUint(decoder, 'headSeq');
  const count = readUint(decoder, 'entry count');
  if (count > limits.maxEntries) throw invalid(`${count} entries exceed the limit of ${limits.maxEntries}`);
  // Each entry takes at least 2 bytes (seq, empty envelope): check before sizing anything by count.
  if (count > remaining(decoder) / 2) throw invalid(`entry count ${count} is more than the frame can hold`);
  const entries: EncEntry[] = [];
  let previous = 0;
  for (let i = 0; i < count; i++) {
    const seq = readUint(decoder, 'entry seq');
    if (seq <= previous || seq > headSeq) {
      throw invalid(`entry seq ${seq} out of order: seqs must increase from 1 up to headSeq ${headSeq}`);
    }
    previous = seq;
    entries.push({ seq, envelope: readBytes(decoder, 'envelope', limits.maxFrameBytes) });
  }
  return { type: 'enc-entries', headSeq, entries };
}

function readSubscribe(decoder: decoding.Decoder): ScopesyncMessage {
  const mode = readEnum(decoder, 'subscribe mode', SUBSCRIBE_MODES);
  const sinceSeq = readUint(decoder, 'sinceSeq');
  const read = readUint(decoder, 'read flag');
  if (read > KEEP_READ_FLAG) throw invalid(`read flag ${read} is out of range 0–${KEEP_READ_FLAG}`);
  const write = readUint(decoder, 'write flag');
  if (write > KEEP_WRITE_FLAG) throw invalid(`write flag ${write} is out of range 0–${KEEP_WRITE_FLAG}`);
  // "keep" is an absent property, so the message's flags feed flagsForWrite directly.
  return {
    type: 'subscribe',
    mode,
    sinceSeq,
    ...(read === KEEP_READ_FLAG ? {} : { read: read as ReadFlag }),
    ...(write === KEEP_WRITE_FLAG ? {} : { write: write as WriteFlag }),
  };
}

/** Reads the body of a y-protocols message (types 0–3) whose type number has already been read. */
function readYProtocolsBody(decoder: decoding.Decoder, type: number, limits: WireLimits): YProtocolsMessage {
  switch (type) {
    case MessageType.Sync:
      return readSync(decoder, limits);
    case MessageType.Awareness:
      return { type: 'awareness', update: readBytes(decoder, 'awareness update', limits.maxFrameBytes) };
    case MessageType.Auth: {
      const subtype = readUint(decoder, 'auth subtype');
      if (subtype !== AuthMessageType.PermissionDenied) throw invalid(`unknown auth subtype ${subtype}`);
      return { type: 'permission-denied', reason: readString(decoder, 'reason', limits.maxStringBytes) };
    }
    case MessageType.QueryAwareness:
      return { type: 'query-awareness' };
    default:
      throw invalid(`message type ${type} is not a y-protocols message (types 0–3)`);
  }
}

/** Reads the body of any message whose type number has already been read. */
function readBody(decoder: decoding.Decoder, type: number, limits: WireLimits): Message {
  switch (type) {
    case MessageType.Sync:
    case MessageType.Awareness:
    case MessageType.Auth:
    case MessageType.QueryAwareness:
      return readYProtocolsBody(decoder, type, limits);
    case MessageType.Subscribe:
      return readSubscribe(decoder);
    case MessageType.Permission: {
      const access = readEnum(decoder, 'access', DOC_ACCESS_LEVELS);
      return { type: 'permission', access, reason: readString(decoder, 'reason', limits.maxStringBytes) };
    }
    case MessageType.Unsubscribe:
      return { type: 'unsubscribe' };
    case MessageType.Ack: {
      const ref = readPositiveUint(decoder, 'ref');
      return { type: 'ack', ref, seq: readUint(decoder, 'seq') };
    }
    case MessageType.Error: {
      const ref = readUint(decoder, 'ref');
      const kind = readString(decoder, 'error kind', limits.maxStringBytes);
      if (!isErrorKind(kind)) throw invalid(`unknown error kind ${JSON.stringify(kind.slice(0, 40))}`);
      return {
        type: 'error',
        ref,
        kind,
        message: readString(decoder, 'error message', limits.maxStringBytes),
      };
    }
    case MessageType.TrackedUpdate: {
      const ref = readPositiveUint(decoder, 'ref');
      return { type: 'tracked-update', ref, update: readBytes(decoder, 'update', limits.maxFrameBytes) };
    }
    case MessageType.EncAppend: {
      const ref = readPositiveUint(decoder, 'ref');
      return { type: 'enc-append', ref, envelope: readBytes(decoder, 'envelope', limits.maxFrameBytes) };
    }
    case MessageType.EncFetch:
      return { type: 'enc-fetch', sinceSeq: readUint(decoder, 'sinceSeq') };
    case MessageType.EncEntries:
      return readEncEntries(decoder, limits);
    case MessageType.EncSnapshot: {
      const ref = readPositiveUint(decoder, 'ref');
      const throughSeq = readUint(decoder, 'throughSeq');
      return {
        type: 'enc-snapshot',
        ref,
        throughSeq,
        snapshot: readBytes(decoder, 'snapshot', limits.maxFrameBytes),
      };
    }
    case MessageType.Ping:
      return { type: 'ping', nonce: readUint(decoder, 'nonce') };
    case MessageType.Pong:
      return { type: 'pong', nonce: readUint(decoder, 'nonce') };
    default:
      throw invalid(`unknown message type ${type}`);
  }
}

/**
 * Reads one message (type first) from `decoder`, leaving it just after the message. Any
 * malformed, truncated or over-limit input throws SyncError('InvalidMessage') and nothing
 * else; the decoder's position is then unspecified. Byte fields are fresh copies.
 */
export function readMessage(decoder: decoding.Decoder, limits: WireLimits = DEFAULT_WIRE_LIMITS): Message {
  return guarded('malformed message', () => readBody(decoder, readUint(decoder, 'message type'), limits));
}

/** Reads one y-protocols message (types 0–3), rejecting our own types as the single-document endpoint must. */
export function readYProtocolsMessage(
  decoder: decoding.Decoder,
  limits: WireLimits = DEFAULT_WIRE_LIMITS,
): YProtocolsMessage {
  return guarded('malformed message', () =>
    readYProtocolsBody(decoder, readUint(decoder, 'message type'), limits),
  );
}
