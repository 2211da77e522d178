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
import { mustOpen, openSocket } from './support/auth-sockets.ts';
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
const { register, link, keysBody } = keyRegistration(api);
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

  it('a version without a device revokes the keys registered for it, at once and for good', async () => {
    const laptop = device(1);
    const phone = device(2);
    const ada = await register('laptop', undefined, { device_id: laptop.deviceId });
    const phoneKey = (await link('phone', ada.identity, { device_id: phone.deviceId })).key;
    const spare = (await link('spare', ada.identity)).key; // bound to no device
    const put = (list: Uint8Array) =>
      api('PUT', `/users/${ada.userId}/devices`, { key: ada.key, body: { list: b64(list) } });
    const validate = async (key: string) => (await api('GET', '/keys/validate', { key })).status;
    const v1 = signDeviceList({ userId: ada.userId, identity: ada.identity, devices: [laptop, phone] });
    expect(await put(v1)).toMatchObject({ status: 200, json: { version: 1, revoked_keys: 0 } });
    const phoneSocket = await mustOpen(t.wsUrl, '/sync', { query: phoneKey });
    const laptopSocket = await mustOpen(t.wsUrl, '/sync', { query: ada.key });

    // The phone is lost: the laptop signs a list without it.
    const v2 = signDeviceList({
      userId: ada.userId,
      identity: ada.identity,
      previous: v1,
      devices: [laptop],
    });
    expect(await put(v2)).toMatchObject({ status: 200, json: { version: 2, revoked_keys: 1 } });
    expect(await phoneSocket.closed).toMatchObject({ code: 4401 });
    expect(await validate(phoneKey)).toBe(401);
    expect(await openSocket(t.wsUrl, '/sync', { query: phoneKey })).toEqual({ ok: false, status: 401 });
    // The laptop's key, and a key bound to no device, work on.
    expect(await validate(ada.key)).toBe(200);
    expect(await validate(spare)).toBe(200);
    expect(laptopSocket.ws.readyState).toBe(laptopSocket.ws.OPEN);
    laptopSocket.ws.close();
    const audit = await t.relay.audit.query({ target: ada.userId });
    expect(audit.filter((e) => e.action === 'remove-devices').map((e) => e.reason)).toEqual([
      `device list version 2 removes ${phone.deviceId}: 1 API key(s) revoked`,
    ]);

    // The removed device gets no key again, and is not listed again; a new device is.
    const relink = await api('POST', '/keys', {
      body: {
        device_name: 'phone again',
        device_id: phone.deviceId,
        ...(await keysBody(ada.identity, { purpose: 'link' })),
      },
    });
    expect(relink.status, JSON.stringify(relink.json)).toBe(409);
    const back = signDeviceList({
      userId: ada.userId,
      identity: ada.identity,
      previous: v2,
      devices: [laptop, phone],
    });
    expect((await put(back)).status).toBe(409);
    const tablet = device(3);
    const tabletKey = (await link('tablet', ada.identity, { device_id: tablet.deviceId })).key;
    const v3 = signDeviceList({
      userId: ada.userId,
      identity: ada.identity,
      previous: v2,
      devices: [laptop, tablet],
    });
    expect(await put(v3)).toMatchObject({ status: 200, json: { version: 3, revoked_keys: 0 } });
    expect(await validate(tabletKey)).toBe(200);
    expect((await api('GET', `/users/${ada.userId}/devices`)).json.lists).toHaveLength(3);
  });

  it('binds a key registered without naming its device, once; a removed device is refused', async () => {
    const laptop = device(1);
    const phone = device(2);
    const ada = await register('laptop', undefined, { device_id: laptop.deviceId });
    const phoneKey = (await link('phone', ada.identity)).key; // as keys were registered before
    const bind = (key: string | undefined, deviceId: string) =>
      api('PUT', '/keys/device', { key, body: { device_id: deviceId } });
    expect(await bind(phoneKey, phone.deviceId)).toMatchObject({
      status: 200,
      json: { user_id: ada.userId, device_id: phone.deviceId },
    });
    expect((await bind(phoneKey, phone.deviceId)).status).toBe(200); // the same again
    expect((await bind(phoneKey, laptop.deviceId)).status).toBe(409);
    expect((await bind(ada.key, phone.deviceId)).status).toBe(409);
    expect((await bind(undefined, phone.deviceId)).status).toBe(401);
    expect((await bind(phoneKey, 'not-a-device')).status).toBe(400);

    const v1 = signDeviceList({ userId: ada.userId, identity: ada.identity, devices: [laptop, phone] });
    const v2 = signDeviceList({
      userId: ada.userId,
      identity: ada.identity,
      previous: v1,
      devices: [laptop],
    });
    for (const list of [v1, v2]) {
      const answer = await api('PUT', `/users/${ada.userId}/devices`, {
        key: ada.key,
        body: { list: b64(list) },
      });
      expect(answer.status).toBe(200);
    }
    expect((await api('GET', '/keys/validate', { key: phoneKey })).status).toBe(401);
    const another = (await link('another', ada.identity)).key;
    expect((await bind(another, phone.deviceId)).status).toBe(409);
  });

  it('refuses a device id that is not one of the device list', async () => {
    const answer = await api('POST', '/keys', { body: { device_name: 'odd', device_id: 'PHONE' } });
    expect(answer.status).toBe(400);
    expect(answer.json.message).toMatch(/device_id/);
  });
});
