/**
 * The numbers on the wire. Types 0–3 are y-protocols' own (y-websocket framing) and must
 * never change; our types start at 100 so that they can never collide with a future
 * y-protocols message. See docs/wire-protocol.md.
 */
export const MessageType = {
  /** y-protocols sync; a {@link SyncMessageType} subtype follows. */
  Sync: 0,
  /** y-protocols awareness update. */
  Awareness: 1,
  /** y-protocols auth; an {@link AuthMessageType} subtype follows. */
  Auth: 2,
  /** y-websocket's request for everyone's awareness state; no payload. */
  QueryAwareness: 3,
  Subscribe: 100,
  Permission: 101,
  Unsubscribe: 102,
  Ack: 103,
  Error: 104,
  TrackedUpdate: 105,
  EncAppend: 110,
  EncFetch: 111,
  EncEntries: 112,
  EncSnapshot: 113,
  /** Client → relay liveness probe, connection-level (docName ""); a varUint nonce follows. */
  Ping: 114,
  /** Relay → client answer to {@link MessageType.Ping}, echoing its nonce; connection-level. */
  Pong: 115,
} as const;

/** One of the message type numbers in {@link MessageType}. */
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Subtypes of a y-protocols sync message (`y-protocols/sync`). */
export const SyncMessageType = {
  Step1: 0,
  Step2: 1,
  Update: 2,
} as const;

/** One of the sync subtype numbers in {@link SyncMessageType}. */
export type SyncMessageType = (typeof SyncMessageType)[keyof typeof SyncMessageType];

/** Subtypes of a y-protocols auth message (`y-protocols/auth`): only permission denied exists. */
export const AuthMessageType = {
  PermissionDenied: 0,
} as const;

/** One of the auth subtype numbers in {@link AuthMessageType}. */
export type AuthMessageType = (typeof AuthMessageType)[keyof typeof AuthMessageType];

/** How a subscription syncs, by wire value: Yjs SyncStep1/2 (plaintext) or the encrypted log. */
export const SUBSCRIBE_MODES = ['plaintext', 'encrypted'] as const;

/** A subscription mode: `plaintext` (Yjs sync) or `encrypted` (append-only envelope log). */
export type SubscribeMode = (typeof SUBSCRIBE_MODES)[number];

/**
 * A caller's access to a document, by wire value (the index in this list; new values are
 * appended, never inserted):
 *
 * - `none` (0): the subscription ended (never granted, revoked, deleted); the reason says why.
 * - `read` (1), `read-write` (2): the subscription is active at that access.
 * - `waiting` (3): the document is absent or hidden from the caller (the same to them). The
 *   subscription stays and starts by itself with a later permission `read`/`read-write` when
 *   the document becomes readable; nothing of the document is sent meanwhile.
 */
export const DOC_ACCESS_LEVELS = ['none', 'read', 'read-write', 'waiting'] as const;

/** A caller's access to a document as the relay announces it in a permission message. */
export type DocAccess = (typeof DOC_ACCESS_LEVELS)[number];

/** Wire value of subscribe's read flag meaning "keep the object's flags, or the scope default on create". */
export const KEEP_READ_FLAG = 3;

/** Wire value of subscribe's write flag meaning "keep the object's flags, or the scope default on create". */
export const KEEP_WRITE_FLAG = 2;
