import {
  deriveIdentity,
  generateRootSeed,
  type Device as ListedDevice,
  newDeviceId,
  ready,
  signDeviceList,
  verifyDeviceListChain,
} from '@scopesync/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyRegistration } from './support/key-registration.ts';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

// The signed device list routes (docs/encryption.md, "Per-device keys"), on a real relay with
// real signatures: only the user's identity key appends, only as the next link of the chain.

let t: TestRelay;
beforeAll(async () => {
  await ready();
  t = await startTestRelay();
});
afterAll(() => t.close());

const api: TestRelay['api'] = (method, path, options) => t.api(method, path, options);
const { register } = keyRegistration(api);
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64url'));

function device(addedAt: number): ListedDevice {
  const keys = deriveIdentity(generateRootSeed());
  return {
    deviceId: newDeviceId(),
    signPublicKey: keys.signPublicKey,
    boxPublicKey: keys.boxPublicKey,
    addedAt,
  };
}

describe('device lists', () => {
  it('the identity key appends the next version; anything else is refused and the chain stays', async () => {
    const ada = await register('ada');
    const bob = await register('bob');
    const laptop = device(1);
    const phone = device(2);
    const put = (key: string | undefined, userId: string, list: Uint8Array) =>
      api('PUT', `/users/${userId}/devices`, { key, body: { list: b64(list) } });
    expect((await api('GET', `/users/${ada.userId}/devices`)).json).toEqual({
      user_id: ada.userId,
      lists: [],
    });

    const v1 = signDeviceList({ userId: ada.userId, identity: ada.identity, devices: [laptop] });
    expect(await put(ada.key, ada.userId, v1)).toMatchObject({ status: 200, json: { version: 1 } });
    const v2 = signDeviceList({
      userId: ada.userId,
      identity: ada.identity,
      previous: v1,
      devices: [laptop, phone],
    });
    // Refused: without a key, by another user, signed by another key, for another user, a
    // version that skips one, one that rewrites version 1.
    expect((await put(undefined, ada.userId, v2)).status).toBe(401);
    expect((await put(bob.key, ada.userId, v2)).status).toBe(403);
    const byBob = signDeviceList({
      userId: ada.userId,
      identity: bob.identity,
      previous: v1,
      devices: [phone],
    });
    expect((await put(ada.key, ada.userId, byBob)).status).toBe(403);
    const forBob = signDeviceList({ userId: bob.userId, identity: ada.identity, devices: [phone] });
    expect((await put(ada.key, ada.userId, forBob)).status).toBe(403);
    const skip = signDeviceList({ userId: ada.userId, identity: ada.identity, previous: v2, devices: [] });
    expect((await put(ada.key, ada.userId, skip)).status).toBe(403);
    const unchained = signDeviceList({ userId: ada.userId, identity: ada.identity, devices: [phone] });
    expect((await put(ada.key, ada.userId, unchained)).status).toBe(403);
    expect((await put(ada.key, ada.userId, v2)).status).toBe(200);

    const served = (await api('GET', `/users/${ada.userId}/devices`)).json.lists as string[];
    const chain = verifyDeviceListChain(served.map(bytes), ada.identity.signPublicKey, ada.userId);
    expect(chain.map((l) => l.devices.map((d) => d.deviceId))).toEqual([
      [laptop.deviceId],
      [laptop.deviceId, phone.deviceId],
    ]);
    expect((await api('GET', '/users/user_0000000000000000/devices')).status).toBe(404);
  });
});
