import { isSyncError } from '@scopesync/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Device, newDeviceId, signDeviceList, verifyDeviceListChain } from './device-list.ts';
import { deriveIdentity, generateRootSeed, type Identity } from './identity.ts';
import { ready } from './sodium.ts';

const ADA = 'user_00000000000000a1';

function kindOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return isSyncError(error) ? error.kind : `not a SyncError: ${String(error)}`;
  }
  return 'no error';
}

let identity: Identity;
let next: Identity;
let device: (addedAt: number) => Device;
beforeAll(async () => {
  await ready();
  identity = deriveIdentity(generateRootSeed());
  next = deriveIdentity(generateRootSeed());
  device = (addedAt) => {
    const keys = deriveIdentity(generateRootSeed());
    return {
      deviceId: newDeviceId(),
      signPublicKey: keys.signPublicKey,
      boxPublicKey: keys.boxPublicKey,
      addedAt,
    };
  };
});

describe('device list', () => {
  it('chains versions signed by the identity key; forged, reordered or foreign versions are refused', () => {
    const laptop = device(1);
    const phone = device(2);
    const v1 = signDeviceList({ userId: ADA, identity, devices: [laptop] });
    const v2 = signDeviceList({ userId: ADA, identity, previous: v1, devices: [laptop, phone] });
    // The phone is lost: a version without it.
    const v3 = signDeviceList({ userId: ADA, identity, previous: v2, devices: [laptop] });
    const chain = verifyDeviceListChain([v1, v2, v3], identity.signPublicKey, ADA);
    expect(chain.map((l) => l.devices.map((d) => d.deviceId))).toEqual([
      [laptop.deviceId],
      [laptop.deviceId, phone.deviceId],
      [laptop.deviceId],
    ]);
    expect(chain[1]?.devices[1]).toEqual(phone);
    expect(kindOf(() => verifyDeviceListChain([v1, v3], identity.signPublicKey, ADA))).toBe('Forbidden');
    expect(kindOf(() => verifyDeviceListChain([v2, v1], identity.signPublicKey, ADA))).toBe('Forbidden');
    expect(kindOf(() => verifyDeviceListChain([v1], identity.signPublicKey, 'user_00000000000000b0'))).toBe(
      'Forbidden',
    );
    const flipped = v2.slice();
    flipped[100] = (flipped[100] as number) ^ 1;
    expect(kindOf(() => verifyDeviceListChain([v1, flipped], identity.signPublicKey, ADA))).toBe('Forbidden');
    // Signed by another key (a relay adding its own device): refused.
    const forged = signDeviceList({
      userId: ADA,
      identity: next,
      previous: v1,
      devices: [laptop, device(3)],
    });
    expect(kindOf(() => verifyDeviceListChain([v1, forged], identity.signPublicKey, ADA))).toBe('Forbidden');
    // Across an identity rotation, with the key history: fine; the retired key after it: refused.
    expect(
      verifyDeviceListChain([v1, forged], [identity.signPublicKey, next.signPublicKey], ADA),
    ).toHaveLength(2);
    const late = signDeviceList({ userId: ADA, identity, previous: forged, devices: [] });
    expect(
      kindOf(() =>
        verifyDeviceListChain([v1, forged, late], [identity.signPublicKey, next.signPublicKey], ADA),
      ),
    ).toBe('Forbidden');
  });
});
