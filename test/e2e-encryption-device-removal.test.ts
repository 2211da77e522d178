import type { SyncError } from '@scopesync/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  appendAcked,
  cleanUp,
  openDevice,
  readDocText,
  startScannedRelay,
} from './e2e-encryption-harness.ts';
import { mustOpen, openSocket } from './support/auth-sockets.ts';

/*
 * Issue 17, attack 6, a lost device whose seed the thief cannot open (the device keeps it under
 * a passphrase) but whose API key it can (the key is sealed under the device key, stored in the
 * same files: docs/encryption.md, "At rest"). Removing the device from the user's signed list on
 * another device revokes the keys registered for it: the thief's sync stops, the user's other
 * devices work on, and the identity stays (no rotation, no new recovery phrase).
 */

afterEach(cleanUp);

const PASSPHRASE = 'correct horse battery staple';

describe('removing a lost device from the device list', () => {
  it('revokes its API key: a thief with a copy of its files is refused on HTTP and WebSocket', async () => {
    const relay = await startScannedRelay();
    const laptop = await openDevice(relay.url, { deviceName: 'laptop' });
    await laptop.client.encryption.ready();
    const ada = laptop.client.userId as string;
    const identityBefore = (await relay.api('GET', `/users/${ada}/keys`)).json;
    const phone = await openDevice(relay.url, {
      deviceName: 'phone',
      recoveryPhrase: await laptop.client.encryption.exportRecoveryPhrase(),
      passphrase: PASSPHRASE,
    });
    await laptop.client.encryption.addThisDevice();
    await phone.client.encryption.addThisDevice();
    const phoneId = (await phone.client.encryption.thisDevice()).deviceId;
    const notes = `USER_PRIVATE/${ada}/notes`;
    const laptopNotes = laptop.client.doc(notes);
    await laptopNotes.whenSynced;
    await appendAcked(laptopNotes, 'before. ');
    expect(await readDocText(phone, notes)).toBe('before. ');
    // The phone is lost. Its key is the one it sent the relay; the thief finds it in the files.
    expect(phone.apiKeys.size).toBe(1);
    const [phoneKey] = [...phone.apiKeys] as [string];
    await phone.client.close();

    // The thief opens a client on the phone's files without the passphrase: no seed, no private
    // doc, but the key syncs, and writes the user's public profile.
    const thief = await openDevice(relay.url, {}, phone.indexedDB);
    expect(thief.client.userId).toBe(ada);
    const authError = new Promise<SyncError>((resolve) => thief.client.on('auth-error', resolve));
    const profile = thief.client.doc(`USER_PUBLIC/${ada}/profile`);
    await profile.whenSynced;
    await appendAcked(profile, 'written by the thief. ');
    const socket = await mustOpen(relay.wsUrl, '/sync', { query: phoneKey });
    expect((await relay.api('GET', '/keys/validate', { key: phoneKey })).status).toBe(200);

    // From the laptop, the user removes the phone: nothing else.
    const left = await laptop.client.encryption.removeDevice(phoneId);
    expect(left.map((d) => d.deviceId)).not.toContain(phoneId);

    // The thief's key is refused on HTTP, its sockets are closed (its client stops, told why),
    // and a new socket or a new start on the copied files is refused.
    expect((await relay.api('GET', '/keys/validate', { key: phoneKey })).status).toBe(401);
    expect((await relay.api('GET', `/userdata/${ada}/USER_PUBLIC`, { key: phoneKey })).status).toBe(401);
    expect(await socket.closed).toMatchObject({ code: 4401 });
    expect((await authError).kind).toBe('Unauthorized');
    expect(thief.client.status).toBe('auth-failed');
    expect(await openSocket(relay.wsUrl, '/sync', { query: phoneKey })).toEqual({ ok: false, status: 401 });
    await thief.client.close();
    await expect(openDevice(relay.url, {}, phone.indexedDB)).rejects.toMatchObject({ kind: 'Unauthorized' });

    // The laptop works on under the same identity: no rotation was needed.
    await appendAcked(laptopNotes, 'after.');
    expect((await relay.api('GET', `/users/${ada}/keys`)).json).toEqual(identityBefore);
    const tablet = await openDevice(relay.url, {
      deviceName: 'tablet',
      recoveryPhrase: await laptop.client.encryption.exportRecoveryPhrase(),
    });
    expect(await readDocText(tablet, notes)).toBe('before. after.');
  });
});
