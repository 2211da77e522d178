import {
  type EnvelopeChain,
  type EnvelopeHeader,
  envelopeHash,
  newStreamId,
  type SignedHead,
  type SnapshotCommitments,
  type StreamHead,
} from '@scopesync/crypto';
import { sameBytes } from './base64.ts';
import type { TamperKind } from './trust.ts';

/** A doc's history as this device knows it (stored with the doc's keys; public values only). */
export interface StoredHistory {
  readonly v: 1;
  /** This device's own stream for the doc, and the last envelope it sealed in it. */
  readonly stream: string;
  readonly counter: number;
  readonly last: Uint8Array;
  /** The high-water mark of every other stream: the last counter and envelope hash seen. */
  readonly heads: readonly StreamHead[];
  /** Hash of the last snapshot seen or sealed (zeros: none). */
  readonly snapshot: Uint8Array;
}

/** Something the history check found: refused (the envelope must not be applied) or only reported. */
export interface HistoryFinding {
  readonly kind: TamperKind;
  readonly message: string;
  /** True when the envelope must be refused; false for a gap, which is reported and read on. */
  readonly refuse: boolean;
}

const ZERO_HASH = new Uint8Array(32);

/**
 * The tamper-evident history of one encrypted document on this device. Every envelope this
 * device seals continues its own stream (counter + 1, the hash of its previous envelope); every
 * envelope received is checked against the high-water mark of its author's stream, which never
 * goes backwards: an envelope at or below the mark is a replay or a fork and is refused, one
 * that skips counters reveals dropped or reordered envelopes (a gap: reported, then read on).
 * Snapshots must cover at least every mark (else a rollback); signed heads of other members
 * reveal envelopes the relay withheld from this device.
 */
export class DocHistory {
  #stream: string;
  #counter: number;
  #last: Uint8Array;
  readonly #heads = new Map<string, StreamHead>();
  #snapshot: Uint8Array;
  #ownKey: Uint8Array;

  /** `ownKey`: the signing key of this device's envelopes. */
  constructor(stored: StoredHistory | undefined, ownKey: Uint8Array) {
    this.#ownKey = ownKey;
    this.#stream = stored?.stream ?? newStreamId();
    this.#counter = stored?.counter ?? 0;
    this.#last = stored?.last ?? ZERO_HASH;
    this.#snapshot = stored?.snapshot ?? ZERO_HASH;
    for (const head of stored?.heads ?? []) this.#heads.set(head.stream, head);
  }

  /**
   * After an identity rotation: this device's envelopes continue in a new stream signed by
   * `ownKey`. The old stream's last position stays as a mark, so it can neither be replayed nor
   * continued (a thief holding the old key cannot write into it).
   */
  newOwnStream(ownKey: Uint8Array): void {
    if (this.#counter > 0) {
      this.#heads.set(this.#stream, {
        stream: this.#stream,
        authorKey: this.#ownKey,
        counter: this.#counter,
        hash: this.#last,
      });
    }
    this.#ownKey = ownKey;
    this.#stream = newStreamId();
    this.#counter = 0;
    this.#last = ZERO_HASH;
  }

  /** The position the next envelope this device seals takes in its stream. */
  next(): EnvelopeChain {
    return { stream: this.#stream, counter: this.#counter + 1, previous: this.#last };
  }

  /** Records an envelope this device sealed with {@link next}. */
  sealed(envelope: Uint8Array, chain: EnvelopeChain): void {
    this.#counter = chain.counter;
    this.#last = envelopeHash(envelope);
  }

  /** What a snapshot sealed now commits to: the last snapshot and every stream's mark, ours included. */
  commitments(): SnapshotCommitments {
    return { parent: this.#snapshot, clock: this.clock() };
  }

  /**
   * What this device has read of the other streams: published in its signed head. Its own
   * stream is left out, as its last envelopes may still wait in the outbox; the members who read
   * them vouch for them.
   */
  readClock(): StreamHead[] {
    return [...this.#heads.values()];
  }

  /** Every stream's mark, this device's own included. */
  clock(): StreamHead[] {
    const own: StreamHead[] =
      this.#counter === 0
        ? []
        : [{ stream: this.#stream, authorKey: this.#ownKey, counter: this.#counter, hash: this.#last }];
    return [...this.#heads.values(), ...own];
  }

  /** Hash of the last snapshot seen or sealed. */
  get snapshot(): Uint8Array {
    return this.#snapshot;
  }

  /** Records a snapshot this device sealed. */
  sealedSnapshot(envelope: Uint8Array): void {
    this.#snapshot = envelopeHash(envelope);
  }

  /**
   * Checks a verified update envelope from the relay against its stream's mark, and moves the
   * mark when it is accepted. A finding with `refuse` means: do not apply it.
   */
  observe(header: EnvelopeHeader, envelope: Uint8Array): HistoryFinding | undefined {
    const { stream, counter, previous } = header.chain;
    if (counter === 0)
      return { kind: 'forged', refuse: true, message: 'the envelope carries no history position' };
    if (stream === this.#stream) {
      // Our own envelope, read back (another fetch): fine while it is one we sealed.
      if (counter <= this.#counter) return undefined;
      return { kind: 'forged', refuse: true, message: `envelope ${counter} claims this device's own stream` };
    }
    const mark = this.#heads.get(stream);
    if (mark && !sameBytes(mark.authorKey, header.authorKey)) {
      return { kind: 'forged', refuse: true, message: `stream ${stream} changed its author` };
    }
    const expected = (mark?.counter ?? 0) + 1;
    if (counter < expected) {
      const same =
        mark !== undefined && counter === mark.counter && sameBytes(mark.hash, envelopeHash(envelope));
      return same
        ? {
            kind: 'replay',
            refuse: true,
            message: `envelope ${counter} of stream ${stream} was delivered again`,
          }
        : {
            kind: 'fork',
            refuse: true,
            message: `envelope ${counter} of stream ${stream} is at or below the ${mark?.counter} already read: an old or forked history`,
          };
    }
    let finding: HistoryFinding | undefined;
    if (counter === expected) {
      if (!sameBytes(previous, mark?.hash ?? ZERO_HASH) && mark !== undefined) {
        return {
          kind: 'fork',
          refuse: true,
          message: `envelope ${counter} of stream ${stream} does not follow the envelope ${mark.counter} this device read: a forked history`,
        };
      }
    } else {
      finding = {
        kind: 'gap',
        refuse: false,
        message: `stream ${stream} jumped from envelope ${expected - 1} to ${counter}: envelopes were dropped or reordered`,
      };
    }
    this.#heads.set(stream, { stream, authorKey: header.authorKey, counter, hash: envelopeHash(envelope) });
    return finding;
  }

  /**
   * Checks a verified snapshot from the relay: it must cover every stream at least as far as
   * this device has read it (else it rolls history back: refused). Moves the marks up to it.
   */
  observeSnapshot(header: EnvelopeHeader, envelope: Uint8Array): HistoryFinding | undefined {
    const commitments = header.commitments;
    if (!commitments) {
      return { kind: 'forged', refuse: true, message: 'the snapshot commits to no history' };
    }
    const covered = new Map(commitments.clock.map((head) => [head.stream, head]));
    for (const [stream, mark] of this.#heads) {
      const head = covered.get(stream);
      if ((head?.counter ?? 0) < mark.counter) {
        return {
          kind: 'rollback',
          refuse: true,
          message: `the snapshot covers stream ${stream} only to ${head?.counter ?? 0}, but this device read up to ${mark.counter}: an old snapshot`,
        };
      }
    }
    for (const head of commitments.clock) {
      if (head.stream === this.#stream) continue;
      this.#heads.set(head.stream, { ...head, authorKey: head.authorKey });
    }
    this.#snapshot = envelopeHash(envelope);
    return undefined;
  }

  /**
   * Compares another member's signed head with what this device has read: a stream they have
   * seen further than this device reveals envelopes the relay withheld from it.
   */
  compare(head: SignedHead): HistoryFinding | undefined {
    for (const theirs of head.clock) {
      if (theirs.stream === this.#stream) continue;
      const mine = this.#heads.get(theirs.stream)?.counter ?? 0;
      if (mine < theirs.counter) {
        return {
          kind: 'withheld',
          refuse: false,
          message: `${head.userId} has read stream ${theirs.stream} up to ${theirs.counter}, this device only to ${mine}: the relay withheld envelopes`,
        };
      }
    }
    return undefined;
  }

  /** What is stored with the doc's keys. */
  toStored(): StoredHistory {
    return {
      v: 1,
      stream: this.#stream,
      counter: this.#counter,
      last: this.#last,
      heads: [...this.#heads.values()],
      snapshot: this.#snapshot,
    };
  }
}
