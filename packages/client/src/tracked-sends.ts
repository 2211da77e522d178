/** What one request in flight carries: local edits (their local seqs) or a snapshot. */
export interface InFlight {
  readonly kind: 'update' | 'snapshot';
  readonly seqs: readonly number[];
}

/**
 * The requests a channel sent on the current socket and the relay has not answered, by ref,
 * and the local seqs they carry (so an entry is never sent twice on one socket).
 */
export class TrackedSends {
  readonly #inFlight = new Map<number, InFlight>();
  readonly #sent = new Set<number>();

  /** Remembers request `ref` until it is answered. */
  track(ref: number, flight: InFlight): void {
    this.#inFlight.set(ref, flight);
    for (const s of flight.seqs) this.#sent.add(s);
  }

  /** The request `ref` was answered: forgets and returns it (undefined when not ours or forgotten). */
  take(ref: number): InFlight | undefined {
    const flight = this.#inFlight.get(ref);
    if (!flight) return undefined;
    this.#inFlight.delete(ref);
    for (const s of flight.seqs) this.#sent.delete(s);
    return flight;
  }

  /** True when local entry `seq` is in flight. */
  isSent(seq: number): boolean {
    return this.#sent.has(seq);
  }

  /** True when an update (local edits) is in flight. */
  hasUpdate(): boolean {
    for (const flight of this.#inFlight.values()) if (flight.kind === 'update') return true;
    return false;
  }

  /** True when a snapshot is in flight. */
  hasSnapshot(): boolean {
    for (const flight of this.#inFlight.values()) if (flight.kind === 'snapshot') return true;
    return false;
  }

  /**
   * Forgets the requests carrying any entry through `seq` (merged by compaction into a new
   * entry that is sent instead): their answers are then ignored.
   */
  forgetThrough(seq: number): void {
    for (const [ref, flight] of this.#inFlight)
      if (flight.seqs.some((s) => s <= seq)) this.#inFlight.delete(ref);
    for (const s of [...this.#sent]) if (s <= seq) this.#sent.delete(s);
  }

  /** Forgets everything: nothing sent so far will be answered (socket gone, sync restarted). */
  clear(): void {
    this.#inFlight.clear();
    this.#sent.clear();
  }
}
