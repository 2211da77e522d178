/** Options of a {@link DeliveryLease}. */
export interface DeliveryLeaseOptions {
  /**
   * How long an echo of this relay's own heartbeat proves it has heard the others, in ms (L in
   * docs/scale-out.md, "Revocations between relays"). The relays that narrow access wait as long
   * before they answer, so every relay of a deployment must use the same value.
   */
  readonly leaseMs: number;
  /** A monotonic clock in ms; default `performance.now`. */
  readonly now?: (() => number) | undefined;
}

/** Where the lease stands after the transport may have lost messages. */
type Phase =
  /** Messages may have been lost since `#validFrom`: no echo sent before it proves anything. */
  | 'lost'
  /** An echo sent after the loss came back; the open sockets are being checked against the store. */
  | 'revalidating'
  /** Every message published before the latest echo's heartbeat has been handled here. */
  | 'held';

/**
 * Whether this relay may trust its in-memory access decisions, or must ask the store before it
 * delivers: a relay's *delivery lease* on the cluster bus.
 *
 * The bus (Redis pub/sub) handles commands in order, so the echo of a heartbeat this relay
 * published at local time t proves that every message Redis took before it — every event
 * another relay had published, and had acknowledged, before t — has reached this relay. While
 * now − t ≤ L (the lease holds), an access narrowed elsewhere and answered at least L after its
 * publication was acknowledged is known here. When the subscription drops, messages are lost:
 * echoes sent before the loss no longer count, and the lease comes back only after an echo sent
 * after it returned AND a check of every open socket against the store that started after that
 * echo (what was lost was committed before the re-subscription, so that check sees it).
 *
 * Time is each process's own monotonic clock; only durations are compared across relays.
 */
export class DeliveryLease {
  readonly #leaseMs: number;
  readonly #now: () => number;
  /** The hot path: delivery trusts memory while now ≤ this. */
  #freshUntil = Number.NEGATIVE_INFINITY;
  /** Heartbeats sent before this prove nothing (the subscription may have dropped since). */
  #validFrom: number;
  /** The newest heartbeat whose echo came back (sent at or after `#validFrom`). */
  #lastEcho = Number.NEGATIVE_INFINITY;
  #phase: Phase = 'held';
  /** Bumped by every loss, so a revalidation that started before one proves nothing. */
  #epoch = 0;

  constructor(options: DeliveryLeaseOptions) {
    this.#leaseMs = options.leaseMs;
    this.#now = options.now ?? (() => performance.now());
    // The subscription was made before the relay took any socket: nothing was lost yet.
    this.#validFrom = this.#now();
  }

  /** L, in ms. */
  get leaseMs(): number {
    return this.#leaseMs;
  }

  /** Whether in-memory access decisions may be trusted now (one clock read and a comparison). */
  fresh(): boolean {
    return this.#now() <= this.#freshUntil;
  }

  /** The time to stamp on a heartbeat about to be published. */
  stamp(): number {
    return this.#now();
  }

  /**
   * The echo of this relay's heartbeat stamped `sentAt` came back. Returns a function to call
   * when the open sockets must be checked against the store before the lease holds again (after
   * a loss), with the promise of that check; null otherwise.
   */
  echoed(sentAt: number): ((revalidation: Promise<void>) => void) | null {
    if (sentAt < this.#validFrom) return null; // sent before the loss: proves nothing
    if (sentAt > this.#lastEcho) this.#lastEcho = sentAt;
    if (this.#phase === 'held') {
      this.#freshUntil = this.#lastEcho + this.#leaseMs;
      return null;
    }
    if (this.#phase === 'revalidating') return null;
    this.#phase = 'revalidating';
    const epoch = this.#epoch;
    return (revalidation) => {
      void revalidation.then(() => {
        if (this.#epoch !== epoch) return; // lost again meanwhile: a later echo starts over
        this.#phase = 'held';
        this.#freshUntil = this.#lastEcho + this.#leaseMs;
      });
    };
  }

  /** The subscription dropped (or may have): messages published from now on until it is back may be lost. */
  lost(): void {
    this.#epoch++;
    this.#phase = 'lost';
    this.#freshUntil = Number.NEGATIVE_INFINITY;
    this.#validFrom = this.#now();
    this.#lastEcho = Number.NEGATIVE_INFINITY;
  }
}
