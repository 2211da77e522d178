import {
  type Address,
  type DocName,
  decodeMuxFrame,
  type ErrorKind,
  encodeMuxFrame,
  HIDDEN_REASON,
  isEncryptedScope,
  isSyncError,
  type Message,
  type MessageOfType,
  parseDocName,
  SyncError,
  type WireLimits,
} from '@scopesync/core';
import type { DocHub } from '../documents/doc-hub.ts';
import type { Counter } from '../metrics.ts';
import type { DocumentSync } from './document-sync.ts';
import type { SessionHandler, SocketSession } from './socket-session.ts';
import type { Subscription, SubscriptionListener } from './subscription.ts';
import type { SubscriptionRegistry } from './subscription-registry.ts';

/** Options of a {@link MuxEndpoint}. */
export interface MuxEndpointOptions {
  readonly hub: DocHub;
  readonly registry: SubscriptionRegistry;
  readonly documentSync: DocumentSync;
  readonly wireLimits: WireLimits;
  /** Most documents one socket may subscribe to at once. */
  readonly maxDocsPerConnection: number;
  readonly denials: Counter;
}

/** A multiplexed subscription with what its start needs. */
interface MuxEntry {
  readonly sub: Subscription;
  readonly subscribe: MessageOfType<'subscribe'>;
  /** The latest SyncStep1 the client sent while the subscription waited or posed, answered when it starts. */
  stateVector: Uint8Array | null;
}

/** The doc name of connection-level frames (ping, pong); no document is ever named "". */
const CONNECTION_LEVEL = '';

const ENCRYPTED_BLOB =
  'this blob is end-to-end encrypted: sync it on /sync with the encrypted channel (subscribe mode 1)';
const PLAINTEXT_BLOB = 'this blob syncs as plaintext Yjs: subscribe with mode 0';

/** A message about document `name` as this endpoint's frame; shared by every subscription. */
function encodeMux(message: Message, name: DocName): Uint8Array {
  return encodeMuxFrame(name, message);
}

/**
 * `/sync`: many documents over one socket, each frame prefixed with the document name
 * (docs/wire-protocol.md). Subscriptions are announced with a permission message (read,
 * read-write, waiting — absent or hidden, the same to the caller — or none), writes are acked
 * after the commit, and encrypted documents use the envelope log.
 */
export class MuxEndpoint implements SessionHandler {
  readonly #hub: DocHub;
  readonly #registry: SubscriptionRegistry;
  readonly #sync: DocumentSync;
  readonly #wireLimits: WireLimits;
  readonly #maxDocs: number;
  readonly #denials: Counter;
  readonly #entries = new Map<SocketSession, Map<DocName, MuxEntry>>();
  readonly #listener: SubscriptionListener = {
    activated: (sub) => {
      const entry = this.#entryOf(sub);
      if (!entry) return;
      this.#announce(sub);
      void sub.session.enqueue(() => this.#start(entry));
    },
    accessChanged: (sub, access, reason) => {
      sub.answer({ type: 'permission', access, reason });
    },
    lost: (sub, reason) => {
      sub.answer({ type: 'permission', access: 'none', reason });
      this.#forget(sub);
    },
    // An error with ref 0 ends the subscription; the client subscribes again after a backoff.
    interrupted: (sub, error) => {
      sub.answer({ type: 'error', ref: 0, kind: error.kind, message: error.message });
      this.#forget(sub);
    },
  };

  constructor(options: MuxEndpointOptions) {
    this.#hub = options.hub;
    this.#registry = options.registry;
    this.#sync = options.documentSync;
    this.#wireLimits = options.wireLimits;
    this.#maxDocs = options.maxDocsPerConnection;
    this.#denials = options.denials;
  }

  /** Starts serving an accepted session: its frames come to {@link frame}, its close to {@link closed}. */
  open(session: SocketSession): void {
    this.#entries.set(session, new Map());
  }

  /** The socket closed: its subscriptions end. */
  closed(session: SocketSession): void {
    for (const entry of this.#entries.get(session)?.values() ?? []) this.#registry.end(entry.sub);
    this.#entries.delete(session);
  }

  /** Handles one frame of an open session. */
  async frame(session: SocketSession, bytes: Uint8Array): Promise<void> {
    const { docName, message } = decodeMuxFrame(bytes, this.#wireLimits);
    switch (message.type) {
      case 'permission':
      case 'ack':
      case 'error':
      case 'enc-entries':
      case 'pong':
        throw new SyncError('InvalidMessage', `${message.type} is sent by the relay, not to it`);
      case 'ping':
        // About the connection, not a document: answered at once, with no document looked up.
        if (docName !== CONNECTION_LEVEL) {
          throw new SyncError('InvalidMessage', 'ping is connection-level: send it with the empty doc name');
        }
        session.sendFrame(encodeMuxFrame(CONNECTION_LEVEL, { type: 'pong', nonce: message.nonce }));
        return;
      default:
    }
    const ref = 'ref' in message ? message.ref : 0;
    let address: Address;
    try {
      address = parseDocName(docName);
    } catch (error) {
      const text = isSyncError(error) ? error.message : 'bad document name';
      session.sendFrame(encodeMuxFrame(docName, { type: 'error', ref, kind: 'BadRequest', message: text }));
      return;
    }
    if (message.type === 'subscribe') return this.#subscribe(session, address, message);
    const entry = this.#entries.get(session)?.get(address.name);
    if (message.type === 'unsubscribe') {
      if (entry) this.#end(entry.sub);
      return;
    }
    const sub = entry?.sub;
    if (entry && sub?.state.phase === 'waiting') return this.#whileWaiting(entry, message);
    if (!sub?.active) {
      const text = 'not subscribed to this document: send subscribe first';
      session.sendFrame(
        encodeMuxFrame(address.name, { type: 'error', ref, kind: 'BadRequest', message: text }),
      );
      return;
    }
    switch (message.type) {
      case 'sync-step1':
      case 'sync-step2':
      case 'sync-update':
      case 'tracked-update':
        if (sub.mode !== 'plaintext')
          return this.#refuse(sub, ref, 'BadRequest', 'this subscription is encrypted');
        if (message.type === 'tracked-update') return this.#sync.write(sub, message.update, message.ref);
        // Answered from an empty document while posing; kept to answer again if the object opens to it.
        if (message.type === 'sync-step1' && sub.posing && entry) entry.stateVector = message.stateVector;
        return this.#sync.handleYProtocols(sub, message);
      case 'awareness':
      case 'query-awareness':
      case 'permission-denied':
        return this.#sync.handleYProtocols(sub, message);
      case 'enc-append':
      case 'enc-fetch':
      case 'enc-snapshot':
        if (sub.mode !== 'encrypted') {
          return this.#refuse(sub, ref, 'BadRequest', 'this subscription is not encrypted');
        }
        return this.#sync.handleEncrypted(sub, message);
    }
  }

  async #subscribe(
    session: SocketSession,
    address: Address,
    message: MessageOfType<'subscribe'>,
  ): Promise<void> {
    const name = address.name;
    const entries = this.#entries.get(session);
    if (!entries) return;
    const existing = entries.get(name);
    if (existing) this.#end(existing.sub); // subscribing again restarts the document's sync
    const refuse = (kind: ErrorKind, text: string): void => {
      session.sendFrame(encodeMuxFrame(name, { type: 'error', ref: 0, kind, message: text }));
    };
    if (entries.size >= this.#maxDocs) {
      return refuse('TooLarge', `at most ${this.#maxDocs} documents per connection`);
    }
    const encryptable = address.kind === 'blob' || isEncryptedScope(address.scope);
    if (message.mode === 'plaintext' && address.kind === 'doc' && isEncryptedScope(address.scope)) {
      return refuse('BadRequest', 'USER_PRIVATE documents are end-to-end encrypted: subscribe with mode 1');
    }
    if (message.mode === 'encrypted' && !encryptable) {
      return refuse('BadRequest', 'only USER_PRIVATE documents and blobs use the encrypted channel');
    }
    let entry: MuxEntry | null = null;
    const admission = await this.#registry.admit({
      session,
      address,
      mode: message.mode,
      flags: { read: message.read, write: message.write, encrypted: message.mode === 'encrypted' },
      listener: this.#listener,
      encode: encodeMux,
      mayWait: true,
      announce: (sub, encrypted) => {
        // A blob's mode is fixed when it is created; told only to callers who may read it.
        if (
          address.kind === 'blob' &&
          encrypted !== undefined &&
          encrypted !== (message.mode === 'encrypted')
        ) {
          return encrypted ? ENCRYPTED_BLOB : PLAINTEXT_BLOB;
        }
        entry = { sub, subscribe: message, stateVector: null };
        entries.set(name, entry);
        this.#announce(sub);
        return null;
      },
    });
    if (admission.kind === 'invalid') return refuse('BadRequest', admission.message);
    if (admission.kind === 'refused') {
      session.sendFrame(
        encodeMuxFrame(name, { type: 'permission', access: 'none', reason: admission.reason }),
      );
      return;
    }
    if (entry !== null && admission.sub.active) await this.#start(entry);
  }

  /** Announces a subscription's access: read, read-write or waiting. */
  #announce(sub: Subscription): void {
    const state = sub.state;
    if (state.phase === 'active') sub.answer({ type: 'permission', access: state.access, reason: '' });
    else if (state.phase === 'waiting') sub.answer({ type: 'permission', access: 'waiting', reason: '' });
  }

  /** Starts an announced, active subscription: keeps the document loaded, then the greeting or the encrypted log. */
  async #start(entry: MuxEntry): Promise<void> {
    const { sub } = entry;
    if (!sub.active || sub.hold) return;
    try {
      // A posing subscription reads nothing of the hidden document: it holds none.
      if (!sub.posing) sub.hold = await this.#hub.hold(sub.name, sub.mode);
    } catch (error) {
      this.#end(sub);
      if (!isSyncError(error)) throw error;
      sub.answer({ type: 'error', ref: 0, kind: error.kind, message: error.message });
      return;
    }
    if (!sub.active) {
      sub.hold?.release();
      sub.hold = null;
      return;
    }
    if (sub.mode === 'encrypted') return this.#sync.startEncrypted(sub, entry.subscribe.sinceSeq);
    await this.#sync.greetPlaintext(sub);
    const stateVector = entry.stateVector;
    entry.stateVector = null;
    if (stateVector && sub.active)
      await this.#sync.handleYProtocols(sub, { type: 'sync-step1', stateVector });
  }

  /**
   * A frame about a waiting subscription: nothing of the document is read or written. The
   * latest SyncStep1 is kept for when the subscription starts; writes with a ref are refused as
   * for a document not subscribed to (the same whether it is absent or hidden).
   */
  #whileWaiting(entry: MuxEntry, message: Message): void {
    switch (message.type) {
      case 'sync-step1':
        if (entry.sub.mode === 'plaintext') entry.stateVector = message.stateVector;
        return;
      case 'tracked-update':
      case 'enc-append':
      case 'enc-snapshot':
        this.#denials.inc();
        entry.sub.answer({
          type: 'error',
          ref: message.ref,
          kind: 'BadRequest',
          message: `not subscribed to this document yet: ${HIDDEN_REASON}`,
        });
        return;
      default:
    }
  }

  /** Answers a request with an error; with ref 0 the error ends the subscription (wire protocol). */
  #refuse(sub: Subscription, ref: number, kind: ErrorKind, message: string): void {
    sub.answer({ type: 'error', ref, kind, message });
    if (ref === 0) this.#end(sub);
  }

  #entryOf(sub: Subscription): MuxEntry | undefined {
    const entry = this.#entries.get(sub.session)?.get(sub.name);
    return entry?.sub === sub ? entry : undefined;
  }

  #end(sub: Subscription): void {
    this.#registry.end(sub);
    this.#forget(sub);
  }

  #forget(sub: Subscription): void {
    const entries = this.#entries.get(sub.session);
    if (entries?.get(sub.name)?.sub === sub) entries.delete(sub.name);
  }
}
