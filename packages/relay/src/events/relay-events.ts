import type { DocName, EncEntry, Level } from '@scopesync/core';

/**
 * Where a change came from. Listeners use it to skip a socket's own echo and to tell a change
 * made on this relay from one another relay reported (docs/architecture.md).
 */
export type ChangeOrigin =
  /** A sync socket on this relay; `session` is its id, unique within the process. */
  | { readonly source: 'socket'; readonly session: number }
  /** An HTTP request to this relay. */
  | { readonly source: 'http' }
  /** The server runtime or a mod running in this relay. */
  | { readonly source: 'runtime' }
  /** Another relay, through the shared event transport. */
  | { readonly source: 'relay'; readonly relayId: string };

/** The origin of HTTP writes. */
export const HTTP_ORIGIN: ChangeOrigin = Object.freeze({ source: 'http' });
/** The origin of the server runtime's and mods' writes. */
export const RUNTIME_ORIGIN: ChangeOrigin = Object.freeze({ source: 'runtime' });

/**
 * A plaintext Yjs update of a document. `seq` is the store's sequence number once committed;
 * null when the update is announced as soon as it is applied, before its commit (readers may
 * see it early; only the writer's ack waits for durability).
 */
export interface DocUpdated {
  readonly type: 'doc-updated';
  readonly name: DocName;
  readonly update: Uint8Array;
  readonly seq: number | null;
  readonly origin: ChangeOrigin;
}

/**
 * A plaintext Yjs update as committed, with its seq: what other relays need to follow a
 * document (they drop duplicates and read gaps from the store). Local sockets already had
 * it as a `doc-updated` when it was applied.
 */
export interface DocCommitted {
  readonly type: 'doc-committed';
  readonly name: DocName;
  readonly seq: number;
  readonly update: Uint8Array;
  readonly origin: ChangeOrigin;
}

/**
 * Plaintext writes of a document were applied in memory and sent to readers — on this relay and,
 * through the cluster, on the others — but the store refused their commit. Every relay reloads
 * its copy of the document from the store, so none keeps serving what was not stored; the
 * writers were refused (no ack) and resend from their outboxes (Yjs updates are idempotent).
 */
export interface DocWriteFailed {
  readonly type: 'doc-write-failed';
  readonly name: DocName;
}

/**
 * This relay reloaded a plaintext document and its old copy held content the store does not:
 * writes shown to readers before a commit that failed, whose writers may never resend them (a
 * client restarted from nothing). The readers are asked for it back with a SyncStep1 of the
 * reloaded state; a reader allowed to write answers with what the relay lacks, which is then
 * stored like any write. Local: every relay reloads (and asks its own sockets) itself.
 */
export interface DocForgotten {
  readonly type: 'doc-forgotten';
  readonly name: DocName;
  /** The state vector of the reloaded copy. */
  readonly stateVector: Uint8Array;
}

/** A committed envelope of an end-to-end encrypted document, with its relay-assigned seq. */
export interface EnvelopeAppended {
  readonly type: 'envelope-appended';
  readonly name: DocName;
  readonly entry: EncEntry;
  readonly origin: ChangeOrigin;
}

/**
 * An awareness (presence) update of a document, already bound to its sender by the relay it
 * arrived at.
 */
export interface AwarenessChanged {
  readonly type: 'awareness-changed';
  readonly name: DocName;
  readonly update: Uint8Array;
  readonly origin: ChangeOrigin;
}

/**
 * Who may see a document may have changed: it was created, its owner or flags changed, or a
 * share was granted, changed or revoked. Every live subscription of the document is decided
 * again before any later event of the document is delivered.
 */
export interface AccessChanged {
  readonly type: 'access-changed';
  readonly name: DocName;
  readonly cause: 'created' | 'flags' | 'owner' | 'share';
}

/** A document (or blob) was deleted: its subscriptions are decided again (a delete is an access change too). */
export interface DocRemoved {
  readonly type: 'doc-removed';
  readonly name: DocName;
}

/** An API key was revoked: every socket that authenticated with it closes (4401). */
export interface CredentialRevoked {
  readonly type: 'credential-revoked';
  /** The key's hash, as sockets remember their credential. */
  readonly credential: string;
}

/** A user's level changed: their live sockets take the new level and every subscription of theirs is decided again. */
export interface LevelChanged {
  readonly type: 'level-changed';
  readonly userId: string;
  readonly level: Level;
}

/** Every domain event of the relay. */
export type RelayEvent =
  | DocUpdated
  | DocCommitted
  | DocWriteFailed
  | DocForgotten
  | EnvelopeAppended
  | AwarenessChanged
  | AccessChanged
  | DocRemoved
  | CredentialRevoked
  | LevelChanged;

/** The type tag of a relay event. */
export type RelayEventType = RelayEvent['type'];

/** The event of one type. */
export type RelayEventOf<T extends RelayEventType> = Extract<RelayEvent, { type: T }>;

/** The ordering lane of a document's events (see `orderingKeyOf`, `EventBus.serialize`). */
export function docLane(name: DocName): string {
  return `doc:${name}`;
}

/**
 * The key events are ordered by: a document's name for document events, so that an access
 * change is handled before any later update of the same document; the credential or user for
 * the others.
 */
export function orderingKeyOf(event: RelayEvent): string {
  switch (event.type) {
    case 'doc-updated':
    case 'doc-committed':
    case 'doc-write-failed':
    case 'doc-forgotten':
    case 'envelope-appended':
    case 'awareness-changed':
    case 'access-changed':
    case 'doc-removed':
      return docLane(event.name);
    case 'credential-revoked':
      return `credential:${event.credential}`;
    case 'level-changed':
      return `user:${event.userId}`;
  }
}
