// What the simulated clients wrote and what the relays acknowledged: the truth a chaos run
// checks the relays against. A token is one appended item, unique in the run.

/** One write of one client. */
export interface LedgerEntry {
  readonly token: string;
  readonly doc: string;
  readonly client: string;
  readonly writtenAt: number;
  ackedAt: number | null;
  /** The write itself failed (the edit was not stored): no later ack covers it. */
  failed?: true;
}

/** Every write of a run and its acknowledgement. */
export class Ledger {
  readonly #entries = new Map<string, LedgerEntry>();
  /** Per client, its tokens in write order (an ack of one covers every earlier one of that doc). */
  readonly #byClientDoc = new Map<string, string[]>();

  /** Records a write before it is made. */
  written(token: string, doc: string, client: string): void {
    this.#entries.set(token, { token, doc, client, writtenAt: Date.now(), ackedAt: null });
    const key = `${client}\u0000${doc}`;
    const list = this.#byClientDoc.get(key) ?? [];
    this.#byClientDoc.set(key, list);
    list.push(token);
  }

  /**
   * Records that the write of `token` failed (the client refused or dropped the edit): an ack of
   * a later write does not cover it, as it was never in the outbox.
   */
  failed(token: string): void {
    const entry = this.#entries.get(token);
    if (entry !== undefined && entry.ackedAt === null) entry.failed = true;
  }

  /** Records the relay's acknowledgement of `token` and so of every earlier stored write of its client to its doc. */
  acked(token: string): void {
    const entry = this.#entries.get(token);
    if (entry === undefined || entry.failed) return;
    const at = Date.now();
    for (const t of this.#byClientDoc.get(`${entry.client}\u0000${entry.doc}`) ?? []) {
      const e = this.#entries.get(t) as LedgerEntry;
      if (!e.failed) e.ackedAt ??= at;
      if (t === token) break;
    }
  }

  /** Writes made so far. */
  get writes(): number {
    return this.#entries.size;
  }

  /** The acknowledged tokens of `doc` (all docs when omitted). */
  ackedTokens(doc?: string): string[] {
    const out: string[] = [];
    for (const e of this.#entries.values())
      if (e.ackedAt !== null && (doc === undefined || e.doc === doc)) out.push(e.token);
    return out;
  }

  /** The number of acknowledged writes. */
  get acks(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.ackedAt !== null) n += 1;
    return n;
  }

  /** Every write, for the checkers. */
  entries(): IterableIterator<LedgerEntry> {
    return this.#entries.values();
  }

  /** The entry of `token`, if it was written in this run. */
  get(token: string): LedgerEntry | undefined {
    return this.#entries.get(token);
  }
}
