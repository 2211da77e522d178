/**
 * How relays of one deployment hear each other: best-effort broadcast of opaque messages.
 * Nothing may depend on a message arriving — the stores are the truth and a relay catches up
 * from them — so a transport only has to be fast, not reliable.
 */
export interface ClusterTransport {
  /** This relay's id, unique among the relays sharing the transport. */
  readonly relayId: string;
  /**
   * Sends a message to every other relay. Resolves with true once the transport took it (Redis
   * answered the PUBLISH: ordered before anything published later), false when it could not;
   * never rejects.
   */
  send(message: Uint8Array): Promise<boolean>;
  /** Receives every other relay's messages (never this relay's own). */
  onMessage(handler: (message: Uint8Array) => void): void;
  /**
   * Optional: receives this relay's own messages as the transport delivers them back, in the
   * order it delivers everything. A transport that offers it lets a relay prove it has heard
   * every message published before one of its own (the delivery lease, `DeliveryLease`).
   */
  onEcho?(handler: (message: Uint8Array) => void): void;
  /**
   * Optional (with `onEcho`): called whenever messages sent to this relay may have been lost
   * (its subscription dropped), at once — not when it is back.
   */
  onLoss?(handler: () => void): void;
  /**
   * Called after the transport lost its connection and got it back: messages sent meanwhile
   * are lost, so whoever follows documents must catch up from the store.
   */
  onReconnect(handler: () => void): void;
  /** Stops sending and receiving. Idempotent. */
  close(): Promise<void>;
}
