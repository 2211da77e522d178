/**
 * How relays of one deployment hear each other: best-effort broadcast of opaque messages.
 * Nothing may depend on a message arriving — the stores are the truth and a relay catches up
 * from them — so a transport only has to be fast, not reliable.
 */
export interface ClusterTransport {
  /** This relay's id, unique among the relays sharing the transport. */
  readonly relayId: string;
  /** Sends a message to every other relay. Resolves when handed to the transport; never rejects. */
  send(message: Uint8Array): Promise<void>;
  /** Receives every other relay's messages (never this relay's own). */
  onMessage(handler: (message: Uint8Array) => void): void;
  /**
   * Called after the transport lost its connection and got it back: messages sent meanwhile
   * are lost, so whoever follows documents must catch up from the store.
   */
  onReconnect(handler: () => void): void;
  /** Stops sending and receiving. Idempotent. */
  close(): Promise<void>;
}
