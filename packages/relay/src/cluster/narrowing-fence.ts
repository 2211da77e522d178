/** Options of a {@link NarrowingFence}. */
export interface NarrowingFenceOptions {
  /** L: how long another relay trusts its memory after its last heartbeat echo (see `DeliveryLease`). */
  readonly leaseMs: number;
  /** How long a failed publication is retried before the fence gives up on it, in ms. Default 5000. */
  readonly retryForMs?: number | undefined;
  /** Pause between retries of a failed publication, in ms. Default 100. */
  readonly retryEveryMs?: number | undefined;
  /** A monotonic clock in ms; default `performance.now`. */
  readonly now?: (() => number) | undefined;
  /** Waits `ms`; default a timer. */
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
  /** Where a publication that never got through is reported. */
  readonly log?:
    | ((level: 'warn' | 'error', message: string, context?: Record<string, unknown>) => void)
    | undefined;
}

/** What a service that narrows access waits on before it answers; {@link NO_FENCE} for one relay. */
export interface AccessFence {
  /**
   * Resolves once every relay enforces the access narrowings this relay has published so far:
   * each either heard of them or can no longer deliver from memory (its lease ran out).
   */
  settle(): Promise<void>;
}

/** The fence of a relay without other relays: nothing to wait for. */
export const NO_FENCE: AccessFence = { settle: () => Promise.resolve() };

/**
 * The narrowing relay's half of the delivery lease. An event that narrows access (a share
 * revoked or lowered, flags, an owner, a deletion, a key revoked, a level set) is published, and
 * the answer to whoever narrowed it waits until Redis acknowledged the PUBLISH (at R) and L has
 * passed since: a relay that has not heard of the event by then got no heartbeat echo sent after
 * R, so its lease ran out and it asks the store before delivering. A publication that fails is
 * retried (a relay that still gets its echoes must get the event too), for a bound; if it never
 * goes through, the fence waits L after giving up and reports it — the relays' 30 s re-check is
 * then the only backstop.
 */
export class NarrowingFence implements AccessFence {
  readonly #leaseMs: number;
  readonly #retryForMs: number;
  readonly #retryEveryMs: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #log: NonNullable<NarrowingFenceOptions['log']>;
  /** Publications not yet acknowledged (or given up on). */
  readonly #pending = new Set<Promise<void>>();
  /** Until when (monotonic ms) answers must wait, over every publication settled so far. */
  #until = Number.NEGATIVE_INFINITY;

  constructor(options: NarrowingFenceOptions) {
    this.#leaseMs = options.leaseMs;
    this.#retryForMs = options.retryForMs ?? 5000;
    this.#retryEveryMs = options.retryEveryMs ?? 100;
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#log = options.log ?? (() => undefined);
  }

  /**
   * Publishes a narrowing event with `publish` (true once the bus acknowledged it, false when it
   * failed), retrying as needed; the next {@link settle} waits for it.
   */
  track(publish: () => Promise<boolean>): void {
    const done = this.#publish(publish).then((at) => {
      this.#until = Math.max(this.#until, at + this.#leaseMs);
    });
    this.#pending.add(done);
    void done.finally(() => this.#pending.delete(done));
  }

  async settle(): Promise<void> {
    if (this.#pending.size > 0) await Promise.all([...this.#pending]);
    // Again after each sleep: a timer may fire a little before the monotonic clock says it is due.
    for (let wait = this.#until - this.#now(); wait > 0; wait = this.#until - this.#now()) {
      await this.#sleep(Math.ceil(wait));
    }
  }

  /** Publishes until acknowledged or the bound; resolves with when it was acknowledged (or given up). */
  async #publish(publish: () => Promise<boolean>): Promise<number> {
    const giveUpAt = this.#now() + this.#retryForMs;
    for (;;) {
      if (await publish()) return this.#now();
      if (this.#now() >= giveUpAt) {
        this.#log('error', 'an access narrowing could not be published to the other relays', {
          retriedForMs: this.#retryForMs,
        });
        return this.#now();
      }
      await this.#sleep(this.#retryEveryMs);
    }
  }
}
