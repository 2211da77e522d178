import type { webcrypto } from 'node:crypto';

// @scopesync/crypto is written for browsers and Node alike and names WebCrypto's global types
// (CryptoKey, SubtleCrypto, Crypto), which TypeScript declares only in the DOM lib. The relay
// compiles without the DOM lib, so it declares them here as what they are in Node 20: the
// `webcrypto` types behind `globalThis.crypto`. In a program that has the DOM lib too, these
// merge with DOM's identical declarations.
declare global {
  interface CryptoKey extends webcrypto.CryptoKey {}
  interface SubtleCrypto extends webcrypto.SubtleCrypto {}
  interface Crypto extends webcrypto.Crypto {}
}
