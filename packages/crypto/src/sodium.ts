import { SyncError } from '@scopesync/core';
import type * as SodiumModule from 'libsodium-wrappers';

/** The libsodium-wrappers API, as typed by @types/libsodium-wrappers. */
export type Sodium = typeof SodiumModule;

let api: Sodium | undefined;
let loading: Promise<void> | undefined;

async function load(): Promise<Sodium> {
  const mod: unknown = await import('libsodium-wrappers');
  const sodium = ((mod as { default?: Sodium }).default ?? mod) as Sodium;
  await sodium.ready;
  return sodium;
}

/**
 * Resolves once libsodium's WebAssembly is loaded. Await it once before calling anything else in
 * this package; every other function is synchronous and throws an Internal SyncError before it.
 * Safe to call any number of times; a failed load may be retried.
 */
export function ready(): Promise<void> {
  loading ??= load().then(
    (sodium) => {
      api = sodium;
    },
    (error: unknown) => {
      loading = undefined;
      throw new SyncError('Unavailable', 'libsodium failed to load', { cause: error });
    },
  );
  return loading;
}

/** The loaded libsodium API; throws an Internal SyncError when {@link ready} has not resolved yet. */
export function sodium(): Sodium {
  if (api === undefined) throw new SyncError('Internal', '@scopesync/crypto: await ready() before using it');
  return api;
}
