/**
 * Most document names a {@link DocOrder} is read with. It is read once per database, so this
 * bounds what a device with a great many documents pays (and keeps) for it; documents past
 * the bound are read one request each, as they were without an order.
 */
export const DOC_ORDER_MAX = 10_000;

/**
 * Documents not asked for that a run may step over: their rows are read and dropped. Names
 * numbered without padding (`note-10`, `note-100` … `note-109`, `note-11`) put one such
 * document between every ten asked for in order; one log read for nothing costs less than the
 * request it saves (workload 5, bench/results-history.md, "Cold start: records read in runs too…").
 */
export const MAX_STEPPED_OVER = 1;

/**
 * The device's documents in key order, as the `heads` store listed them when it was read: the
 * order their logs lie in the `entries` store (keyed `[doc, seq]`). Reads of documents next to
 * each other in it can share one `getAll` over the key range from the first to the last: in
 * fake-indexeddb, and in a browser, a request costs far more than a row.
 *
 * Only a hint of what lies between two documents: one created since can fall between them,
 * and its rows are then read and dropped, as are those of a document a run steps over (see
 * {@link spans}). It never decides what a reader gets, only how many requests it takes.
 */
export class DocOrder {
  readonly #position: ReadonlyMap<string, number>;

  /** `docs` in key order, as `getAllKeys` on the `heads` store answers. */
  constructor(docs: readonly string[]) {
    this.#position = new Map(docs.map((doc, i) => [doc, i]));
  }

  /**
   * `docs` (distinct) in runs that can each be read as one key range: the documents of a run
   * were next to each other in this order, or at most {@link MAX_STEPPED_OVER} apart, in key
   * order within the run. A document the order does not know (created since it was read, or
   * past {@link DOC_ORDER_MAX}) is a run alone.
   */
  spans(docs: Iterable<string>): string[][] {
    const known: Array<readonly [number, string]> = [];
    const runs: string[][] = [];
    for (const doc of docs) {
      const at = this.#position.get(doc);
      if (at === undefined) runs.push([doc]);
      else known.push([at, doc]);
    }
    known.sort((a, b) => a[0] - b[0]);
    let run: string[] = [];
    let last = Number.NaN;
    for (const [at, doc] of known) {
      if (run.length > 0 && at - last - 1 > MAX_STEPPED_OVER) {
        runs.push(run);
        run = [];
      }
      run.push(doc);
      last = at;
    }
    if (run.length > 0) runs.push(run);
    return runs;
  }
}
