import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DocHandle } from '@scopesync/client';
import { importRecoveryPhrase } from '@scopesync/crypto';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  cleanUp,
  everythingStored,
  findMarker,
  indexedDbContents,
  marker,
  openDevice,
  startScannedRelay,
  docText as text,
} from './e2e-encryption-harness.ts';

/*
 * USER_PRIVATE docs with the built-in end-to-end encryption, through the real relay (SQLite,
 * libsodium, fake-indexeddb): a second device linked with the recovery phrase reads and edits
 * them, offline too; the relay's log stays short through encrypted snapshots; and nothing
 * written is ever found in clear on the relay (data files, logs) or in either device's store.
 */

afterEach(cleanUp);

async function append(handle: DocHandle, words: string): Promise<void> {
  await handle.transact((d) => {
    const t = d.getText('t');
    t.insert(t.length, words);
  });
}

describe('USER_PRIVATE docs, end-to-end encrypted', () => {
  it('a second device linked with the recovery phrase reads and edits them, offline too; nothing in clear', async () => {
    const relay = await startScannedRelay();
    const laptop = await openDevice(relay.url, { deviceName: 'laptop' });
    const userId = laptop.client.userId as string;
    expect(laptop.client.encryption.seedLocation).toBe('store');
    const inNotes = marker('notes');
    const inSettings = marker('settings');
    const fromPhone = marker('phone');
    const offline = marker('offline');

    const notes = laptop.client.doc(`USER_PRIVATE/${userId}/notes`);
    await notes.whenSynced;
    await append(notes, inNotes);
    await notes.whenAcked();
    await laptop.client.userData.set('USER_PRIVATE', userId, 'settings', { secret: inSettings });
    const settings = laptop.client.doc(`USER_PRIVATE/${userId}/settings`);
    await settings.whenAcked();
    await settings.release();

    const phrase = await laptop.client.encryption.exportRecoveryPhrase();
    expect(phrase.split(' ')).toHaveLength(24);
    const phone = await openDevice(relay.url, { deviceName: 'phone', recoveryPhrase: phrase });
    expect(phone.client.userId).toBe(userId);
    const phoneNotes = phone.client.doc(`USER_PRIVATE/${userId}/notes`);
    await phoneNotes.whenSynced;
    expect(text(phoneNotes)).toBe(inNotes);
    expect(await phone.client.userData.get('USER_PRIVATE', userId, 'settings')).toEqual({
      secret: inSettings,
    });
    await append(phoneNotes, fromPhone);
    await vi.waitFor(() => expect(text(notes)).toBe(inNotes + fromPhone));

    // Offline: the phone edits, restarts without the relay, still reads everything, and syncs later.
    phone.client.disconnect();
    await append(phoneNotes, offline);
    await phone.client.close();
    const restarted = await openDevice(
      relay.url,
      { deviceName: 'phone', recoveryPhrase: phrase, connect: false },
      phone.indexedDB,
    );
    const reopened = restarted.client.doc(`USER_PRIVATE/${userId}/notes`);
    await reopened.whenLoaded;
    expect(text(reopened)).toBe(inNotes + fromPhone + offline);
    expect(reopened.pending).toBe(1);
    restarted.client.connect();
    await vi.waitFor(() => expect(text(notes)).toBe(inNotes + fromPhone + offline));
    await reopened.whenAcked();

    await notes.whenStored();
    const devices = { laptop, phone: restarted };
    for (const d of Object.values(devices)) await d.client.close();
    const stored = await everythingStored(relay, devices);
    for (const m of [inNotes, inSettings, fromPhone, offline]) expect(findMarker(m, stored)).toEqual([]);
    // The scan covered the relay's request and socket lines, and no API key is in any line.
    expect(relay.logs.some((line) => line.startsWith('info http request'))).toBe(true);
    expect(relay.logs.some((line) => line.startsWith('info socket opened'))).toBe(true);
    expect(relay.logs.some((line) => line.startsWith('info socket closed'))).toBe(true);
    const keys = [...laptop.apiKeys, ...phone.apiKeys, ...restarted.apiKeys];
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(findMarker(key, stored)).toEqual([]);
    // Nor is the root seed itself: it is kept wrapped under the device key.
    const seed = await importRecoveryPhrase(phrase);
    for (const device of Object.values(devices)) {
      const chunks = await indexedDbContents(device.indexedDB);
      expect(chunks.some((c) => Buffer.from(c).includes(Buffer.from(seed)))).toBe(false);
    }
  });

  it("keeps the relay's log short: clients replace it by an encrypted snapshot", async () => {
    const relay = await startScannedRelay();
    const laptop = await openDevice(relay.url, { deviceName: 'laptop', compactAfter: 10 });
    const userId = laptop.client.userId as string;
    const name = `USER_PRIVATE/${userId}/journal`;
    const journal = laptop.client.doc(name);
    await journal.whenSynced;
    for (let i = 0; i < 60; i++) await append(journal, `${i};`);
    await journal.whenAcked();
    const expected = Array.from({ length: 60 }, (_, i) => `${i};`).join('');

    await vi.waitFor(async () => {
      await relay.relay.hub.flush();
      const db = new Database(join(relay.dataDir, 'docs.sqlite'), { readonly: true });
      try {
        const { n } = db.prepare('SELECT count(*) AS n FROM doc_entries WHERE doc = ?').get(name) as {
          n: number;
        };
        expect(n).toBeLessThanOrEqual(11);
      } finally {
        db.close();
      }
    });
    const phone = await openDevice(relay.url, {
      deviceName: 'phone',
      recoveryPhrase: await laptop.client.encryption.exportRecoveryPhrase(),
    });
    const read = phone.client.doc(name);
    await read.whenSynced;
    expect(text(read)).toBe(expected);
  });

  it('keeps the root seed in a 0600 file when given seedFile (Node)', async () => {
    const relay = await startScannedRelay();
    const dir = await mkdtemp(join(tmpdir(), 'scopesync-seed-'));
    try {
      const seedFile = join(dir, 'keys', 'root-seed');
      const first = await openDevice(relay.url, { deviceName: 'server-job', seedFile });
      expect(first.client.encryption.seedLocation).toBe('seed-file');
      expect((await stat(seedFile)).mode & 0o777).toBe(0o600);
      const keys = await first.client.encryption.publicKeys();
      const userId = first.client.userId as string;
      const doc = first.client.doc(`USER_PRIVATE/${userId}/state`);
      await doc.whenSynced;
      await append(doc, 'kept');
      await doc.whenAcked();
      await first.client.close();
      // Nothing about the seed in the store, wrapped or not.
      const chunks = await indexedDbContents(first.indexedDB);
      expect(chunks.some((c) => Buffer.from(c).toString('latin1') === 'root-seed')).toBe(false);

      // The same file on a fresh store is the same identity: it links and reads the doc.
      const again = await openDevice(relay.url, { deviceName: 'server-job-2', seedFile });
      expect(again.client.userId).toBe(userId);
      expect(await again.client.encryption.publicKeys()).toEqual(keys);
      const read = again.client.doc(`USER_PRIVATE/${userId}/state`);
      await read.whenSynced;
      expect(text(read)).toBe('kept');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
