import type { TamperEvent } from '@scopesync/client';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUp, openDevice, startScannedRelay } from './e2e-encryption-harness.ts';

/*
 * The signed device list (issue 17, attack 6, per-device keys steps 1–2; partial): each device
 * has its own random keys and the identity key signs the list of them, chained by hash. Other
 * clients read it verified against the keys they pinned, and a relay that serves an older
 * version — bringing back a removed (lost) device — is caught, not believed.
 */

afterEach(cleanUp);

describe('device lists', () => {
  it('devices add themselves under the identity key; a sharee sees them; a rolled-back list is refused', async () => {
    const relay = await startScannedRelay();
    const laptop = await openDevice(relay.url, { deviceName: 'laptop' });
    await laptop.client.encryption.ready();
    const ada = laptop.client.userId as string;
    const phone = await openDevice(relay.url, {
      deviceName: 'phone',
      recoveryPhrase: await laptop.client.encryption.exportRecoveryPhrase(),
    });
    // Bob reads through a relay that, when told to, serves only the first versions of a list.
    let rollBackTo: number | undefined;
    const bob = await openDevice(relay.url, {
      deviceName: 'bob',
      fetch: async (input, init) => {
        const answer = await fetch(input, init);
        if (rollBackTo === undefined || !String(input).endsWith(`/users/${ada}/devices`)) return answer;
        const body = (await answer.json()) as { lists: string[] };
        return new Response(JSON.stringify({ ...body, lists: body.lists.slice(0, rollBackTo) }), {
          status: 200,
          headers: { 'content-type': 'application/json' },
        });
      },
    });
    await bob.client.encryption.ready();
    const tamper: TamperEvent[] = [];
    bob.client.on('tamper', (event) => tamper.push(event));

    const laptopDevice = await laptop.client.encryption.thisDevice();
    const phoneDevice = await phone.client.encryption.thisDevice();
    // Each device has keys of its own, not the identity's.
    expect(laptopDevice.deviceId).not.toBe(phoneDevice.deviceId);
    expect(laptopDevice.signPublicKey).not.toEqual(phoneDevice.signPublicKey);
    expect(laptopDevice.signPublicKey).not.toEqual(
      (await laptop.client.encryption.publicKeys()).signPublicKey,
    );
    expect(await laptop.client.encryption.thisDevice()).toEqual(laptopDevice); // kept

    await laptop.client.encryption.addThisDevice();
    await phone.client.encryption.addThisDevice();
    await phone.client.encryption.addThisDevice(); // listed already: no new version
    const ids = (devices: readonly { deviceId: string }[]) => devices.map((d) => d.deviceId);
    expect(ids(await bob.client.trust.devicesOf(ada))).toEqual([laptopDevice.deviceId, phoneDevice.deviceId]);
    expect((await bob.client.trust.devicesOf(ada))[1]?.boxPublicKey).toEqual(phoneDevice.boxPublicKey);

    // The phone is lost: the laptop signs a list without it.
    expect(ids(await laptop.client.encryption.removeDevice(phoneDevice.deviceId))).toEqual([
      laptopDevice.deviceId,
    ]);
    expect(ids(await bob.client.trust.devicesOf(ada))).toEqual([laptopDevice.deviceId]);

    // A relay serving version 2 again (the phone listed) is refused, and reported.
    rollBackTo = 2;
    await expect(bob.client.trust.devicesOf(ada)).rejects.toMatchObject({ kind: 'Forbidden' });
    expect(tamper.map((e) => [e.docName, e.kind])).toEqual([[`users/${ada}/devices`, 'rollback']]);
    rollBackTo = undefined;
    expect(ids(await bob.client.trust.devicesOf(ada))).toEqual([laptopDevice.deviceId]);

    // After an identity rotation the new identity key signs on; versions the old key signed
    // stay valid for whoever follows the signed rotation.
    await laptop.client.encryption.rotateIdentity();
    const tablet = await openDevice(relay.url, {
      deviceName: 'tablet',
      recoveryPhrase: await laptop.client.encryption.exportRecoveryPhrase(),
    });
    const tabletDevice = await tablet.client.encryption.thisDevice();
    await tablet.client.encryption.addThisDevice();
    expect(ids(await bob.client.trust.devicesOf(ada))).toEqual([
      laptopDevice.deviceId,
      tabletDevice.deviceId,
    ]);
  });
});
