/**
 * Where outstanding registration challenges live: issued by one request, redeemed (once) by a
 * later one, which may reach another relay. One relay keeps them in memory
 * ({@link MemoryChallengeStore}); several relays need a shared store.
 */
export interface ChallengeStore {
  /** Remembers a fresh challenge until `expiresAt` (epoch milliseconds). */
  issue(challenge: string, expiresAt: number): Promise<void>;
  /** Spends a challenge: true when it was outstanding and not expired at `now`. A challenge is redeemed at most once. */
  redeem(challenge: string, now: number): Promise<boolean>;
}

/**
 * The in-memory {@link ChallengeStore}, bounded: issuing past `maxOutstanding` forgets the
 * oldest, so a flood of requests cannot grow it. A restart forgets them; clients ask again.
 */
export class MemoryChallengeStore implements ChallengeStore {
  readonly #max: number;
  /** challenge → expiry; Map order is issue order, so the first entries are the oldest. */
  readonly #open = new Map<string, number>();

  constructor(maxOutstanding = 10_000) {
    this.#max = Math.max(1, maxOutstanding);
  }

  async issue(challenge: string, expiresAt: number): Promise<void> {
    // Expired ones are refused at redeem; the bound alone keeps the map small.
    while (this.#open.size >= this.#max) {
      const oldest = this.#open.keys().next().value;
      if (oldest === undefined) break;
      this.#open.delete(oldest);
    }
    this.#open.set(challenge, expiresAt);
  }

  async redeem(challenge: string, now: number): Promise<boolean> {
    const expiresAt = this.#open.get(challenge);
    this.#open.delete(challenge);
    return expiresAt !== undefined && expiresAt >= now;
  }
}
