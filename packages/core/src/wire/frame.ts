import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { guarded, invalid, readString, remaining } from './guarded-reads.ts';
import type { Message, MuxFrame, YProtocolsMessage } from './message.ts';
import { isYProtocolsMessage, readMessage, readYProtocolsMessage, writeMessage } from './message-codec.ts';
import { DEFAULT_WIRE_LIMITS, type WireLimits } from './wire-limits.ts';

/*
 * Whole WebSocket frames. A frame holds exactly one message: bytes after it are rejected,
 * so a frame cannot smuggle a second message past whoever checked the first.
 */

function openFrame(bytes: Uint8Array, limits: WireLimits): decoding.Decoder {
  if (!(bytes instanceof Uint8Array)) throw invalid('a frame must be a Uint8Array');
  if (bytes.length > limits.maxFrameBytes) {
    throw invalid(`frame of ${bytes.length} bytes exceeds the limit of ${limits.maxFrameBytes}`);
  }
  if (bytes.length === 0) throw invalid('empty frame');
  return decoding.createDecoder(bytes);
}

function closeFrame(decoder: decoding.Decoder): void {
  const left = remaining(decoder);
  if (left !== 0) throw invalid(`${left} trailing bytes after the message`);
}

/** Encodes one frame of the single-document (y-websocket) endpoint: exactly y-protocols' bytes. */
export function encodeDocFrame(message: YProtocolsMessage): Uint8Array {
  if (!isYProtocolsMessage(message)) {
    throw invalid(
      `cannot send ${String((message as Message).type)} on the single-document endpoint: y-protocols only`,
    );
  }
  const encoder = encoding.createEncoder();
  writeMessage(encoder, message);
  return encoding.toUint8Array(encoder);
}

/**
 * Decodes one frame of the single-document endpoint. Accepts only y-protocols messages
 * (types 0–3); anything else, malformed or over `limits` throws SyncError('InvalidMessage').
 */
export function decodeDocFrame(
  bytes: Uint8Array,
  limits: WireLimits = DEFAULT_WIRE_LIMITS,
): YProtocolsMessage {
  const decoder = openFrame(bytes, limits);
  const message = readYProtocolsMessage(decoder, limits);
  closeFrame(decoder);
  return message;
}

/** Encodes one frame of the multiplexed endpoint: varString docName, then the message. */
export function encodeMuxFrame(docName: string, message: Message): Uint8Array {
  if (typeof docName !== 'string') throw invalid('cannot write doc name: not a string');
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, docName);
  writeMessage(encoder, message);
  return encoding.toUint8Array(encoder);
}

/**
 * Decodes one frame of the multiplexed endpoint. `docName` comes back raw, unvalidated:
 * check it with `parseDocName`. Anything malformed or over `limits` throws
 * SyncError('InvalidMessage') and nothing else.
 */
export function decodeMuxFrame(bytes: Uint8Array, limits: WireLimits = DEFAULT_WIRE_LIMITS): MuxFrame {
  const decoder = openFrame(bytes, limits);
  const docName = guarded('malformed doc name', () => readString(decoder, 'doc name', limits.maxStringBytes));
  const message = readMessage(decoder, limits);
  closeFrame(decoder);
  return { docName, message };
}
