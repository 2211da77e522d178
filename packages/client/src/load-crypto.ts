import type * as Crypto from '@scopesync/crypto';
import type * as DocKeysModule from './doc-keys.ts';

/** `@scopesync/crypto`, with libsodium ready. */
export type CryptoModule = typeof Crypto;

let loading: Promise<CryptoModule> | undefined;

/**
 * `@scopesync/crypto` with libsodium loaded, fetched by the first caller that needs a key: a
 * USER_PRIVATE doc, an encrypted blob, `client.encryption`, or a new device publishing its
 * public keys. Until then bundlers keep it (and libsodium, most of the client's weight) in a
 * chunk of its own that an app which never encrypts never downloads. A failed load may be
 * retried.
 */
export function loadCrypto(): Promise<CryptoModule> {
  if (!loading) {
    loading = import('@scopesync/crypto').then(async (crypto) => {
      await crypto.ready();
      return crypto;
    });
    loading.catch(() => {
      loading = undefined;
    });
  }
  return loading;
}

/** The module of `DocKeys`, which calls crypto synchronously: loaded with it, never before. */
export async function loadDocKeys(): Promise<typeof DocKeysModule> {
  await loadCrypto();
  return import('./doc-keys.ts');
}
