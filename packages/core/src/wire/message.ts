import type { ErrorKind } from '../errors.ts';
import type { ReadFlag, WriteFlag } from '../rules.ts';
import type { DocAccess, SubscribeMode } from './message-type.ts';

/** y-protocols SyncStep1: the sender's Yjs state vector; the peer answers with SyncStep2. */
export interface SyncStep1Message {
  readonly type: 'sync-step1';
  readonly stateVector: Uint8Array;
}

/** y-protocols SyncStep2: the Yjs update (v1) the peer is missing, in answer to SyncStep1. */
export interface SyncStep2Message {
  readonly type: 'sync-step2';
  readonly update: Uint8Array;
}

/** y-protocols sync update: a live Yjs update (v1), not acknowledged. */
export interface SyncUpdateMessage {
  readonly type: 'sync-update';
  readonly update: Uint8Array;
}

/** y-protocols awareness: an encoded awareness update (`encodeAwarenessUpdate`), carried opaquely. */
export interface AwarenessMessage {
  readonly type: 'awareness';
  readonly update: Uint8Array;
}

/** y-protocols auth/permission-denied: the relay dropped a write, or refused the document. */
export interface PermissionDeniedMessage {
  readonly type: 'permission-denied';
  readonly reason: string;
}

/** y-websocket's query-awareness: asks peers to send their awareness state. */
export interface QueryAwarenessMessage {
  readonly type: 'query-awareness';
}

/**
 * Starts syncing one document on the multiplexed socket. `read`/`write` are the object flags
 * the caller's first write creates the object with (or changes an existing object's flags
 * to); absent means keep the existing flags, or the scope default on create.
 */
export interface SubscribeMessage {
  readonly type: 'subscribe';
  readonly mode: SubscribeMode;
  /** Encrypted mode: the last seq the client already has (0 for none). Ignored in plaintext mode. */
  readonly sinceSeq: number;
  readonly read?: ReadFlag | undefined;
  readonly write?: WriteFlag | undefined;
}

/**
 * The relay's answer to subscribe, and a notice whenever the caller's access changes: `none`
 * ends the subscription, `waiting` keeps it without sending anything of the document.
 */
export interface PermissionMessage {
  readonly type: 'permission';
  readonly access: DocAccess;
  /** Why, when access is narrower than asked; "" when granted or waiting. */
  readonly reason: string;
}

/** Stops syncing one document on the multiplexed socket. */
export interface UnsubscribeMessage {
  readonly type: 'unsubscribe';
}

/** The request `ref` (tracked update, enc append or enc snapshot) is durably stored as entry `seq`. */
export interface AckMessage {
  readonly type: 'ack';
  /** A positive client-chosen request reference. */
  readonly ref: number;
  readonly seq: number;
}

/** A request failed (`ref` > 0), or the document's subscription ended (`ref` 0). */
export interface ErrorMessage {
  readonly type: 'error';
  /** The failed request's reference, or 0 when the error is not about a request. */
  readonly ref: number;
  readonly kind: ErrorKind;
  readonly message: string;
}

/** A Yjs update (v1) the relay acknowledges with `ack` once it is durably stored. */
export interface TrackedUpdateMessage {
  readonly type: 'tracked-update';
  /** A positive client-chosen reference, unique per socket until acked. */
  readonly ref: number;
  readonly update: Uint8Array;
}

/** Appends a signed, encrypted envelope to an encrypted document's log; answered with `ack` or `error`. */
export interface EncAppendMessage {
  readonly type: 'enc-append';
  /** A positive client-chosen reference, unique per socket until acked. */
  readonly ref: number;
  readonly envelope: Uint8Array;
}

/** Asks for every entry of an encrypted document's log after `sinceSeq`; answered with `enc-entries`. */
export interface EncFetchMessage {
  readonly type: 'enc-fetch';
  readonly sinceSeq: number;
}

/** One entry of an encrypted document's log. */
export interface EncEntry {
  /** The relay-assigned sequence number, at least 1. */
  readonly seq: number;
  readonly envelope: Uint8Array;
}

/** Entries of an encrypted document's log, in strictly increasing seq order, each seq ≤ `headSeq`. */
export interface EncEntriesMessage {
  readonly type: 'enc-entries';
  /** The highest seq the relay has assigned in this document. */
  readonly headSeq: number;
  readonly entries: readonly EncEntry[];
}

/** An encrypted snapshot replacing every log entry up to `throughSeq`; answered with `ack` or `error`. */
export interface EncSnapshotMessage {
  readonly type: 'enc-snapshot';
  /** A positive client-chosen reference, unique per socket until acked. */
  readonly ref: number;
  readonly throughSeq: number;
  readonly snapshot: Uint8Array;
}

/**
 * A client's liveness probe, sent on the multiplexed endpoint under the empty doc name
 * because it is about the connection, not a document. A browser cannot see WebSocket
 * protocol pings, so this is how it learns that a silent connection is still alive.
 */
export interface PingMessage {
  readonly type: 'ping';
  /** Any client-chosen number; the relay echoes it in `pong`. */
  readonly nonce: number;
}

/** The relay's immediate answer to `ping`, under the empty doc name, echoing its nonce. */
export interface PongMessage {
  readonly type: 'pong';
  readonly nonce: number;
}

/** The y-protocols messages (types 0–3): all the single-document endpoint carries. */
export type YProtocolsMessage =
  | SyncStep1Message
  | SyncStep2Message
  | SyncUpdateMessage
  | AwarenessMessage
  | PermissionDeniedMessage
  | QueryAwarenessMessage;

/** Our own messages (types ≥ 100), carried only on the multiplexed endpoint. */
export type ScopesyncMessage =
  | SubscribeMessage
  | PermissionMessage
  | UnsubscribeMessage
  | AckMessage
  | ErrorMessage
  | TrackedUpdateMessage
  | EncAppendMessage
  | EncFetchMessage
  | EncEntriesMessage
  | EncSnapshotMessage
  | PingMessage
  | PongMessage;

/** Every message either endpoint carries, discriminated by `type`. */
export type Message = YProtocolsMessage | ScopesyncMessage;

/** The message variant whose `type` is `T`. */
export type MessageOfType<T extends Message['type']> = Extract<Message, { readonly type: T }>;

/** One decoded frame of the multiplexed endpoint. `docName` is raw: validate it with `parseDocName`. */
export interface MuxFrame {
  readonly docName: string;
  readonly message: Message;
}
