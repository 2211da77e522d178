import { bundleForBrowser } from '@scopesync/bench/browser-bundle';
import { describe, expect, it } from 'vitest';

// A browser app that never encrypts never downloads libsodium: @scopesync/crypto and libsodium
// sit behind the client's one import() boundary (packages/client/src/load-crypto.ts), so a
// bundler puts them in chunks of their own, fetched the first time a USER_PRIVATE doc, an
// encrypted blob or client.encryption is used. Sizes are measured in bench/ (workload 9).

const APP = `
  import { createClient } from '@scopesync/client';
  const client = await createClient({ url: location.origin, deviceName: 'laptop' });
  const todo = client.doc('PUBLIC_RW/_/todo');
  await todo.transact((doc) => doc.getArray('items').push(['write the README']));
`;

const isCrypto = (input: string): boolean => /libsodium|packages\/crypto\//.test(input);

describe('the client in a browser bundle', () => {
  it('loads libsodium and @scopesync/crypto only on first use, not at start', async () => {
    const bundle = await bundleForBrowser(APP);
    expect(bundle.initial.inputs.filter(isCrypto)).toEqual([]);
    // They are still in the bundle, as lazy chunks.
    expect(bundle.total.inputs.some((input) => input.includes('libsodium-wrappers'))).toBe(true);
    expect(bundle.total.inputs.some((input) => input.includes('packages/crypto/src/envelope.ts'))).toBe(true);
  });
});
