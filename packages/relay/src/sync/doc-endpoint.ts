import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  type Address,
  decodeDocFrame,
  encodeDocFrame,
  isEncryptedScope,
  isSyncError,
  isYProtocolsMessage,
  type Message,
  type WireLimits,
  wsCloseCodeOf,
} from '@scopesync/core';
import type { WebSocket, WebSocketServer } from 'ws';
import type { DocHub } from '../documents/doc-hub.ts';
import { type DocumentSync, EMPTY_STATE_VECTOR } from './document-sync.ts';
import type { SessionHandler, SocketSession } from './socket-session.ts';
import type { Subscription, SubscriptionListener } from './subscription.ts';
import type { Admission, AdmitRequest, SubscriptionRegistry } from './subscription-registry.ts';
import { completeUpgrade, refuseUpgrade, type UpgradeHandler } from './upgrade.ts';

/** Options of a {@link DocEndpoint}. */
export interface DocEndpointOptions {
  readonly hub: DocHub;
  readonly registry: SubscriptionRegistry;
  readonly documentSync: DocumentSync;
  readonly wss: WebSocketServer;
  readonly wireLimits: WireLimits;
  /**
   * Registers an accepted session with the server (heartbeat, revocation, shutdown), which
   * reads its frames into this endpoint's {@link DocEndpoint.frame}; false when it must not live.
   */
  readonly accepted: (session: SocketSession, ws: WebSocket) => boolean;
}

const ENCRYPTED_PRIVATE =
  'USER_PRIVATE documents are end-to-end encrypted: sync them on /sync with the encrypted channel';
const ENCRYPTED_BLOB =
  'this blob is end-to-end encrypted: sync it on /sync with the encrypted channel (subscribe mode 1)';

// Shared by every socket of this endpoint, not made per socket: none depends on more than
// its arguments.

/** A stock client requests no flags: the object is created as its scope says. */
const NO_FLAGS = Object.freeze({});

/** A message as this endpoint's frame: y-protocols only, anything else is not sent. */
function encodePlaintext(message: Message): Uint8Array | null {
  return isYProtocolsMessage(message) ? encodeDocFrame(message) : null;
}

/** Told only to callers who may read it: the channel a document needs, or null when this one is right. */
function announcePlaintext(sub: Subscription, encrypted: boolean | undefined): string | null {
  const address = sub.address;
  if (address.kind === 'doc' && isEncryptedScope(address.scope)) return ENCRYPTED_PRIVATE;
  return encrypted === true ? ENCRYPTED_BLOB : null;
}

/** Refuses the upgrade of a socket not admitted: 400 for the wrong channel, 403 without read access. */
function refuseAdmission(socket: Duplex, admission: Exclude<Admission, { kind: 'admitted' }>): void {
  if (admission.kind === 'invalid') refuseUpgrade(socket, 'BadRequest', admission.message);
  else refuseUpgrade(socket, 'Forbidden', admission.reason);
}

/**
 * `/sync/<doc name>`: exactly y-protocols, so a stock y-websocket `WebsocketProvider` works
 * unmodified. One subscription per socket, decided before the socket opens: no read access is a
 * plain 403 (not open-then-close, which makes clients reconnect in a storm); losing it later
 * closes the socket with 4403 (4404 when the document was deleted). y-protocols has no
 * permission frame, so a change between read and read-write is not announced: refused writes
 * are answered with its permission-denied message.
 */
export class DocEndpoint implements SessionHandler {
  readonly #hub: DocHub;
  readonly #registry: SubscriptionRegistry;
  readonly #sync: DocumentSync;
  readonly #wss: WebSocketServer;
  readonly #wireLimits: WireLimits;
  readonly #accepted: DocEndpointOptions['accepted'];
  readonly #listener: SubscriptionListener = {
    // Never waits (refused at the upgrade instead); a posing subscription whose hidden object
    // became readable starts syncing it now.
    activated: (sub) => {
      void sub.session.enqueue(async () => {
        if (!sub.active) return;
        sub.hold ??= await this.#hub.hold(sub.name, 'plaintext');
        await this.#sync.greetPlaintext(sub);
        // Its SyncStep1 was answered from an empty document: send what it has not seen.
        await this.#sync.handleYProtocols(sub, { type: 'sync-step1', stateVector: EMPTY_STATE_VECTOR });
      });
    },
    accessChanged: () => undefined,
    lost: (sub, reason, deleted) => {
      sub.session.close(wsCloseCodeOf(deleted ? 'NotFound' : 'Forbidden'), deleted ? 'deleted' : reason);
    },
    // One document per socket: closing it is how a stock client is told to come back (it reconnects).
    interrupted: (sub, error) => {
      sub.session.close(wsCloseCodeOf(error.kind), error.message);
    },
  };

  constructor(options: DocEndpointOptions) {
    this.#hub = options.hub;
    this.#registry = options.registry;
    this.#sync = options.documentSync;
    this.#wss = options.wss;
    this.#wireLimits = options.wireLimits;
    this.#accepted = options.accepted;
  }

  /**
   * Admits a session to `address` and completes the upgrade, or refuses it with plain HTTP. In
   * the caller's turn when the decision and the document are at hand (a store that answers at
   * once, a document another socket holds): then it returns nothing, else a promise.
   */
  open(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    session: SocketSession,
    address: Address,
  ): void | Promise<void> {
    const admit: AdmitRequest = {
      session,
      address,
      mode: 'plaintext',
      flags: NO_FLAGS,
      listener: this.#listener,
      encode: encodePlaintext,
      mayWait: false,
      announce: announcePlaintext,
    };
    const admission = this.#registry.admitNow(admit);
    if (admission === undefined) return this.#openLater(request, socket, head, admit);
    if (admission.kind !== 'admitted') return refuseAdmission(socket, admission);
    const sub = admission.sub;
    // A posing subscription reads nothing of the hidden document: it holds none.
    if (!sub.posing) {
      const hold = this.#hub.holdNow(sub.name, 'plaintext');
      if (hold === null) return this.#holdThenComplete(request, socket, head, sub);
      sub.hold = hold;
    }
    completeUpgrade(this.#wss, request, socket, head, sub, this.#upgraded);
  }

  /** {@link open} when the admission has to wait (its lane busy, or the store reads asynchronously). */
  async #openLater(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    admit: AdmitRequest,
  ): Promise<void> {
    const admission = await this.#registry.admit(admit);
    if (admission.kind !== 'admitted') return refuseAdmission(socket, admission);
    await this.#holdThenComplete(request, socket, head, admission.sub);
  }

  /** Loads and holds the admitted subscription's document (unless it poses), then completes the upgrade. */
  async #holdThenComplete(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    sub: Subscription,
  ): Promise<void> {
    try {
      if (!sub.posing) sub.hold = await this.#hub.hold(sub.name, 'plaintext');
    } catch (error) {
      this.#registry.end(sub);
      if (!isSyncError(error)) throw error;
      return refuseUpgrade(socket, error.kind, error.message);
    }
    completeUpgrade(this.#wss, request, socket, head, sub, this.#upgraded);
  }

  /** What a completed or abandoned handshake does with its subscription: one object for every socket. */
  readonly #upgraded: UpgradeHandler<Subscription> = {
    accept: (sub, ws) => {
      const session = sub.session;
      if (!this.#accepted(session, ws)) return;
      if (!sub.active) {
        // Access was lost while the handshake completed.
        session.close(wsCloseCodeOf('Forbidden'), 'access revoked');
        return;
      }
      // Greeted now when the document is at hand: the socket's listeners were attached just
      // above, so no frame of it can be queued before the greeting.
      if (!this.#sync.greetPlaintextNow(sub)) void session.enqueue(() => this.#sync.greetPlaintext(sub));
    },
    abandon: (sub) => this.#registry.end(sub),
  };

  /** Handles a frame of one of this endpoint's sockets: the socket's one subscription, found from the session. */
  frame(session: SocketSession, bytes: Uint8Array): void | Promise<void> {
    const message = decodeDocFrame(bytes, this.#wireLimits);
    const sub = this.#registry.soleSubscription(session);
    if (sub?.active) return this.#sync.handleYProtocols(sub, message);
  }

  /** Nothing of its own to give back: the socket's subscription ends with its session (`endSession`). */
  closed(_session: SocketSession): void {}
}
