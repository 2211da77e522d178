import { type DocName, isLevel, parseDocName, SyncError } from '@scopesync/core';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import type { ChangeOrigin, RelayEvent } from '../events/relay-events.ts';

// The events one relay tells the others, as bytes: a version, the sender's relay id, then one
// event — a type tag and its fields (lib0 varints, varStrings and varUint8Arrays) — or, under the
// batch tag, a count and that many events, each a tag and its fields. Updates travel as bytes,
// not base64. A `doc-updated` travels only as applied here, before its commit (no seq); the commit
// follows as `doc-committed`, which carries the seq other relays order by. Tags are only ever
// appended, so an older relay drops a newer tag (a batch too) as malformed, nothing worse.

const VERSION = 1;

/** The event types relays forward to each other, by wire tag. */
const TAGS = [
  'doc-committed',
  'envelope-appended',
  'awareness-changed',
  'access-changed',
  'doc-removed',
  'credential-revoked',
  'level-changed',
  'doc-updated',
  'doc-write-failed',
] as const;

/** An event type that travels between relays. */
export type ClusterEventType = (typeof TAGS)[number];

/**
 * Whether an event is forwarded to the other relays: every event of a forwarded type, except a
 * `doc-updated` that carries a seq (other relays get the committed update as `doc-committed`).
 */
export function isClusterEvent(event: RelayEvent): event is Extract<RelayEvent, { type: ClusterEventType }> {
  if (event.type === 'doc-updated') return event.seq === null;
  return (TAGS as readonly string[]).includes(event.type);
}

const CAUSES = ['created', 'flags', 'owner', 'share'] as const;

/** The tag of a heartbeat (see `DeliveryLease`): far past the event tags, which only grow by one. */
const HEARTBEAT_TAG = 127;

/** Encodes a heartbeat of `relayId`, stamped with its own monotonic clock (only it reads the stamp). */
export function encodeHeartbeat(relayId: string, sentAt: number): Uint8Array {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, VERSION);
  encoding.writeVarString(e, relayId);
  encoding.writeVarUint(e, HEARTBEAT_TAG);
  encoding.writeFloat64(e, sentAt);
  return encoding.toUint8Array(e);
}

/**
 * The stamp of a heartbeat, or null when the message is not one (an event, or malformed: left to
 * {@link decodeClusterEvent} to report). Never throws.
 */
export function decodeHeartbeat(bytes: Uint8Array): number | null {
  try {
    const d = decoding.createDecoder(bytes);
    if (decoding.readVarUint(d) !== VERSION) return null;
    decoding.readVarString(d);
    if (decoding.readVarUint(d) !== HEARTBEAT_TAG) return null;
    const sentAt = decoding.readFloat64(d);
    return decoding.hasContent(d) || !Number.isFinite(sentAt) ? null : sentAt;
  } catch {
    return null;
  }
}

/** An event that travels between relays. */
export type ClusterEvent = Extract<RelayEvent, { type: ClusterEventType }>;

/** The tag of several events in one message: next to the heartbeat's, far past the event tags. */
const BATCH_TAG = 126;

/** Encodes one forwarded event, sent by `relayId`: bytes a relay that knows no batches reads too. */
export function encodeClusterEvent(relayId: string, event: ClusterEvent): Uint8Array {
  const e = headerOf(relayId);
  writeEvent(e, event);
  return encoding.toUint8Array(e);
}

/**
 * Encodes `events` (at least one), sent by `relayId`, as one message that keeps their order: a
 * lone event exactly as {@link encodeClusterEvent} does, several as a batch.
 */
export function encodeClusterEvents(relayId: string, events: readonly ClusterEvent[]): Uint8Array {
  const [first] = events;
  if (first === undefined) throw new SyncError('BadRequest', 'a message of cluster events cannot be empty');
  if (events.length === 1) return encodeClusterEvent(relayId, first);
  const e = headerOf(relayId);
  encoding.writeVarUint(e, BATCH_TAG);
  encoding.writeVarUint(e, events.length);
  for (const event of events) writeEvent(e, event);
  return encoding.toUint8Array(e);
}

/** A message's version and sender. */
function headerOf(relayId: string): encoding.Encoder {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, VERSION);
  encoding.writeVarString(e, relayId);
  return e;
}

/** Writes one event: its tag, then its fields. */
function writeEvent(e: encoding.Encoder, event: ClusterEvent): void {
  encoding.writeVarUint(e, TAGS.indexOf(event.type));
  switch (event.type) {
    case 'doc-committed':
      encoding.writeVarString(e, event.name);
      encoding.writeVarUint(e, event.seq);
      encoding.writeVarUint8Array(e, event.update);
      break;
    case 'envelope-appended':
      encoding.writeVarString(e, event.name);
      encoding.writeVarUint(e, event.entry.seq);
      encoding.writeVarUint8Array(e, event.entry.envelope);
      break;
    case 'awareness-changed':
    case 'doc-updated':
      encoding.writeVarString(e, event.name);
      encoding.writeVarUint8Array(e, event.update);
      break;
    case 'doc-write-failed':
      encoding.writeVarString(e, event.name);
      break;
    case 'access-changed':
      encoding.writeVarString(e, event.name);
      encoding.writeVarUint(e, CAUSES.indexOf(event.cause));
      break;
    case 'doc-removed':
      encoding.writeVarString(e, event.name);
      break;
    case 'credential-revoked':
      encoding.writeVarString(e, event.credential);
      break;
    case 'level-changed':
      encoding.writeVarString(e, event.userId);
      encoding.writeVarUint(e, event.level);
      break;
  }
}

/**
 * Decodes a message of forwarded events (one, or a batch) in the order they were sent; their
 * origin becomes the sending relay. Throws SyncError('InvalidMessage') for anything malformed,
 * a whole batch with it: a relay never trusts the transport's bytes.
 */
export function decodeClusterEvents(bytes: Uint8Array): { relayId: string; events: RelayEvent[] } {
  try {
    const d = decoding.createDecoder(bytes);
    if (decoding.readVarUint(d) !== VERSION) throw new Error('unknown version');
    const relayId = decoding.readVarString(d);
    const origin: ChangeOrigin = { source: 'relay', relayId };
    const tag = decoding.readVarUint(d);
    const events: RelayEvent[] = [];
    if (tag === BATCH_TAG) {
      const count = decoding.readVarUint(d);
      // Every event takes at least two bytes: a larger count is a lie, not a reason to loop.
      if (count < 2 || count > bytes.length / 2) throw new Error('bad batch count');
      for (let i = 0; i < count; i++) events.push(readEvent(d, decoding.readVarUint(d), origin));
    } else {
      events.push(readEvent(d, tag, origin));
    }
    if (decoding.hasContent(d)) throw new Error('trailing bytes');
    return { relayId, events };
  } catch (error) {
    throw new SyncError('InvalidMessage', 'malformed event from another relay', { cause: error });
  }
}

/** Reads the fields of one event tagged `tag`; throws on anything unknown. */
function readEvent(d: decoding.Decoder, tag: number, origin: ChangeOrigin): RelayEvent {
  const type = TAGS[tag];
  const name = (): DocName => parseDocName(decoding.readVarString(d)).name;
  switch (type) {
    case 'doc-committed':
      return {
        type,
        name: name(),
        seq: decoding.readVarUint(d),
        update: decoding.readVarUint8Array(d),
        origin,
      };
    case 'envelope-appended': {
      const docName = name();
      const seq = decoding.readVarUint(d);
      return { type, name: docName, entry: { seq, envelope: decoding.readVarUint8Array(d) }, origin };
    }
    case 'awareness-changed':
      return { type, name: name(), update: decoding.readVarUint8Array(d), origin };
    case 'doc-updated':
      return { type, name: name(), update: decoding.readVarUint8Array(d), seq: null, origin };
    case 'doc-write-failed':
      return { type, name: name() };
    case 'access-changed': {
      const docName = name();
      const cause = CAUSES[decoding.readVarUint(d)];
      if (cause === undefined) throw new Error('unknown cause');
      return { type, name: docName, cause };
    }
    case 'doc-removed':
      return { type, name: name() };
    case 'credential-revoked':
      return { type, credential: decoding.readVarString(d) };
    case 'level-changed': {
      const userId = decoding.readVarString(d);
      const level = decoding.readVarUint(d);
      if (!isLevel(level)) throw new Error('unknown level');
      return { type, userId, level };
    }
    default:
      throw new Error('unknown event type');
  }
}
