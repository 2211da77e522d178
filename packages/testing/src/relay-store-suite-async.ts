import { type ErrorKind, isSyncError } from '@scopesync/core';
import { expect } from 'vitest';

// Waiting and failing in the relay store suite: holding a transaction open while other calls
// run, letting them run, and expecting a call to fail with a given kind.

/** A promise and the function that resolves it. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** The timer function through globalThis: this package compiles without DOM or Node types. */
const timers = globalThis as unknown as { setTimeout(callback: () => void, ms: number): unknown };

/** Lets pending callbacks, timers and I/O completions run: enough for a call to finish if nothing holds it back. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => timers.setTimeout(r, 0));
}

/** Expects `promise` to reject with a `SyncError` of `kind`. */
export async function expectKind(promise: Promise<unknown>, kind: ErrorKind): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isSyncError(error, kind), `expected SyncError(${kind}), got ${String(error)}`).toBe(true);
}
