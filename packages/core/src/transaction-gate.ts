import { SyncError } from './errors.ts';

/**
 * Carries a value along an asynchronous call chain. Node's `AsyncLocalStorage` is one; core
 * takes it as an argument because core compiles without Node types.
 */
export interface AsyncContext<T> {
  run<R>(value: T, fn: () => R): R;
  getStore(): T | undefined;
}

/** One transaction's passage through a {@link TransactionGate}. */
export interface TransactionTicket {
  /** True from when `body` starts until it settles; calls through the transaction check it. */
  readonly open: boolean;
}

interface Ticket extends TransactionTicket {
  open: boolean;
  readonly gate: TransactionGate;
}

/**
 * The admission control of a store whose transactions span awaits: at most one transaction
 * runs at a time, and a plain call waits while one is open or queued, so nobody sees a
 * transaction half done. With an {@link AsyncContext} it also recognises a call on the store
 * made from inside a transaction's own callback, which would otherwise wait for itself.
 */
export class TransactionGate {
  readonly #context: AsyncContext<Ticket> | undefined;
  /** Settles when the last call queued so far has settled; null when nothing is queued. */
  #tail: Promise<unknown> | null = null;
  #queued = 0;

  /** `context`: recommended; without it a call on the store from inside a transaction deadlocks. */
  constructor(context?: AsyncContext<object>) {
    this.#context = context as AsyncContext<Ticket> | undefined;
  }

  /**
   * Runs a plain call: at once when no transaction is open or queued (keeping a synchronous
   * store's call order), otherwise after everything queued before it.
   */
  run<T>(step: () => T | Promise<T>): Promise<T> {
    this.#refuseReentry();
    if (this.#tail === null) {
      try {
        return Promise.resolve(step());
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.#enqueue(step);
  }

  /**
   * Whether a plain call made now would run at once: no transaction open or queued, and not a
   * call from inside a transaction's own callback (which `run` refuses). A synchronous store
   * may then answer in the caller's turn, as `run` would have.
   */
  get idle(): boolean {
    // An open transaction (and so a call from inside its callback) keeps the tail set until it settles.
    return this.#tail === null;
  }

  /**
   * Runs `body` alone: nothing else the gate admits runs until it settles. `body` receives
   * its ticket, open while it runs.
   */
  exclusive<T>(body: (ticket: TransactionTicket) => Promise<T>): Promise<T> {
    this.#refuseReentry();
    return this.#enqueue(async () => {
      const ticket: Ticket = { open: true, gate: this };
      try {
        return await (this.#context ? this.#context.run(ticket, () => body(ticket)) : body(ticket));
      } finally {
        ticket.open = false;
      }
    });
  }

  #enqueue<T>(step: () => T | Promise<T>): Promise<T> {
    const result = (this.#tail ?? Promise.resolve()).then(step);
    this.#queued++;
    const settled = result.then(
      () => this.#settle(),
      () => this.#settle(),
    );
    this.#tail = settled;
    return result;
  }

  #settle(): void {
    this.#queued--;
    if (this.#queued === 0) this.#tail = null;
  }

  #refuseReentry(): void {
    const ticket = this.#context?.getStore();
    // A closed ticket is a continuation that outlived its transaction: an ordinary caller.
    if (ticket?.gate === this && ticket.open) {
      throw new SyncError(
        'Internal',
        'a transaction callback called the store itself; it must use the tx it was given',
      );
    }
  }
}
