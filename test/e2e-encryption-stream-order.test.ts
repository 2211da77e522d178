import type { DocHandle, TamperEvent } from '@scopesync/client';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUp, openDevice, startScannedRelay, docText as text } from './e2e-encryption-harness.ts';

/*
 * Issue 16, finding 9 of docs/reliability.md: every envelope a device sends continues its
 * stream (counter + 1), and the user's other devices refuse one at or below a counter they have
 * read as a fork. So the relay's log must never hold a device's envelope behind a later one of
 * the same stream — else an edit the writer saw acknowledged is lost for every other device.
 * Real relay on SQLite, real libsodium, devices on fake-indexeddb.
 */

afterEach(cleanUp);

async function append(handle: DocHandle, words: string): Promise<void> {
  await handle.transact((d) => {
    const t = d.getText('t');
    t.insert(t.length, words);
  });
}

describe('the order of a device stream on the relay', () => {
  it('edits made offline and sent in two envelopes (one too big to batch) all reach a second device, no fork', async () => {
    const relay = await startScannedRelay();
    // Small frames: the third edit does not fit with the first two into one envelope.
    const laptop = await openDevice(relay.url, { deviceName: 'laptop', maxSendBytes: 4096 });
    const userId = laptop.client.userId as string;
    const notes = laptop.client.doc(`USER_PRIVATE/${userId}/notes`);
    await notes.whenSynced;
    await append(notes, 'first.');
    await notes.whenAcked();

    // Offline, three edits, each sealed (with its own counter) as it is stored. Back online the
    // first two go merged into one envelope, the big third one after it, alone.
    laptop.client.disconnect();
    await append(notes, ' one.');
    await append(notes, ' two.');
    const big = ` ${'three '.repeat(1000)}`;
    await append(notes, big);
    await notes.whenStored();
    expect(notes.pending).toBe(3);
    laptop.client.connect();
    await notes.whenAcked();
    const written = `first. one. two.${big}`;
    expect(text(notes)).toBe(written);

    // The user's phone reads every acknowledged edit, and refuses nothing.
    const phone = await openDevice(relay.url, {
      deviceName: 'phone',
      recoveryPhrase: await laptop.client.encryption.exportRecoveryPhrase(),
    });
    const tamper: TamperEvent[] = [];
    phone.client.on('tamper', (event) => tamper.push(event));
    const refused: string[] = [];
    const phoneNotes = phone.client.doc(`USER_PRIVATE/${userId}/notes`);
    phoneNotes.on('error', (error) => refused.push(error.message));
    await phoneNotes.whenSynced;
    expect(refused).toEqual([]);
    expect(tamper).toEqual([]);
    expect(text(phoneNotes)).toBe(written);
  });
});
