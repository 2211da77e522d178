import { join } from 'node:path';
import type { DocHandle, SyncClient } from '@scopesync/client';
import type { SyncError } from '@scopesync/core';
import {
  createDocKey,
  deriveIdentity,
  exportRecoveryPhrase,
  generateRootSeed,
  type Identity,
  ready,
  sealEnvelope,
} from '@scopesync/crypto';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as Y from 'yjs';
import {
  cleanUp,
  openDevice,
  rawSend,
  type ScannedRelay,
  startScannedRelay,
} from './e2e-encryption-harness.ts';

/*
 * Tampering with what the relay stores or relays. Each bad envelope is refused with a clear
 * error — by the relay when it is sent, and by the client when it was slipped into the relay's
 * SQLite file directly — and none of them corrupts the document: it still loads, with all the
 * good content, and stays editable.
 */

afterEach(cleanUp);

interface Person {
  readonly apiKey: string;
  readonly userId: string;
  readonly phrase: string;
  readonly identity: Identity;
}

async function person(relay: ScannedRelay, name: string): Promise<Person> {
  await ready();
  const { key, userId } = await relay.user(name);
  const seed = generateRootSeed();
  return { apiKey: key, userId, phrase: await exportRecoveryPhrase(seed), identity: deriveIdentity(seed) };
}

/** A fresh device of `who` (empty store): it fetches its keys and the whole log from the relay. */
async function device(relay: ScannedRelay, who: Person): Promise<SyncClient> {
  const { client } = await openDevice(relay.url, { apiKey: who.apiKey, recoveryPhrase: who.phrase });
  await client.encryption.ready();
  return client;
}

/** Opens a blob and collects the errors it reports while catching up. */
function openBlob(client: SyncClient, id: string): { handle: DocHandle; errors: SyncError[] } {
  const handle = client.blobs.open(id, { encrypted: true });
  const errors: SyncError[] = [];
  handle.on('error', (e) => errors.push(e));
  return { handle, errors };
}

async function write(handle: DocHandle, type: string, words: string): Promise<void> {
  await handle.transact((d) => {
    const t = d.getText(type);
    t.insert(t.length, words);
  });
  await handle.whenAcked();
}

const text = (handle: DocHandle, type = 't'): string => handle.doc.getText(type).toString();

/** Runs `edit` on the relay's SQLite file of documents while the relay is stopped. */
async function editRelayDocs(
  relay: ScannedRelay,
  edit: (db: Database.Database) => void,
): Promise<ScannedRelay> {
  await relay.relay.close();
  const db = new Database(join(relay.dataDir, 'docs.sqlite'));
  try {
    edit(db);
  } finally {
    db.close();
  }
  return startScannedRelay(relay.dataDir);
}

function entries(db: Database.Database, doc: string): { seq: number; data: Uint8Array }[] {
  return db.prepare('SELECT seq, data FROM doc_entries WHERE doc = ? ORDER BY seq').all(doc) as {
    seq: number;
    data: Uint8Array;
  }[];
}

/** Appends an entry the way the store does: after the document's newest one (doc-log-sql.ts). */
function insertEntry(db: Database.Database, doc: string, data: Uint8Array): number {
  const head = db.prepare('SELECT max(seq) FROM doc_entries WHERE doc = ?').pluck().get(doc) as number;
  db.prepare('INSERT INTO doc_entries (doc, seq, data) VALUES (?, ?, ?)').run(doc, head + 1, data);
  return head + 1;
}

describe('tampered envelopes', () => {
  it('a flipped bit, a replay into another doc and a non-member envelope are refused; the docs keep their good content', async () => {
    const first = await startScannedRelay();
    const ada = await person(first, 'ada');
    const bob = await person(first, 'bob');
    const eve = await person(first, 'eve');
    {
      const adaDevice = await device(first, ada);
      const bobDevice = await device(first, bob);
      await device(first, eve); // registers Eve's keys
      const ledger = adaDevice.blobs.open('ledger', { encrypted: true });
      await ledger.whenSynced;
      await write(ledger, 't', 'ada paid 10;');
      await adaDevice.blobs.share('ledger', bob.userId, 'read_write');
      const bobLedger = bobDevice.blobs.open('ledger', { encrypted: true });
      await bobLedger.whenSynced;
      await write(bobLedger, 't', 'bob paid 20;');
      const other = adaDevice.blobs.open('other', { encrypted: true });
      await other.whenSynced;
      await write(other, 't', 'other doc;');
      // The entry whose bit gets flipped: from another device of Ada's, in its own type. (Yjs
      // applies one writer's edits in order, so losing an entry also holds back that writer's
      // later edits: here there are none.)
      const adaPhone = await device(first, ada);
      const phoneLedger = adaPhone.blobs.open('ledger', { encrypted: true });
      await phoneLedger.whenSynced;
      await write(phoneLedger, 'victim', 'to be damaged');
      await adaPhone.close();

      // What the relay refuses when it is sent: the replay and a non-member's envelope.
      const ledgerEntries = await first.relay.hub.fetchEncrypted('blob/ledger' as never, 0);
      const replayed = ledgerEntries.entries.at(-1)?.envelope as Uint8Array;
      expect(await rawSend(first.wsUrl, ada.apiKey, 'blob/other', replayed)).toMatchObject({
        type: 'error',
        kind: 'Forbidden',
      });
      await expect(rawSend(first.wsUrl, eve.apiKey, 'blob/ledger', replayed)).rejects.toThrow(/no access/);
      await adaDevice.close();
      await bobDevice.close();
    }

    // Now behind the relay's back, in its SQLite file.
    const forged = sealEnvelope({
      docName: 'blob/ledger',
      key: createDocKey(),
      author: { ...eve.identity, userId: eve.userId },
      plaintext: (() => {
        const d = new Y.Doc();
        d.getText('t').insert(0, 'eve was here;');
        return Y.encodeStateAsUpdate(d);
      })(),
    });
    let flippedSeq = 0;
    let forgedSeq = 0;
    let replayedSeq = 0;
    const relay = await editRelayDocs(first, (db) => {
      const [, bobs, victim] = entries(db, 'blob/ledger');
      if (!victim || !bobs) throw new Error('expected three entries');
      const damaged = new Uint8Array(victim.data);
      damaged[damaged.length - 100] = (damaged[damaged.length - 100] as number) ^ 0x04;
      db.prepare('UPDATE doc_entries SET data = ? WHERE doc = ? AND seq = ?').run(
        damaged,
        'blob/ledger',
        victim.seq,
      );
      flippedSeq = victim.seq;
      forgedSeq = insertEntry(db, 'blob/ledger', forged);
      replayedSeq = insertEntry(db, 'blob/other', bobs.data);
    });

    const fresh = await device(relay, ada);
    const ledger = openBlob(fresh, 'ledger');
    const other = openBlob(fresh, 'other');
    await Promise.all([ledger.handle.whenSynced, other.handle.whenSynced]);
    expect(text(ledger.handle)).toBe('ada paid 10;bob paid 20;');
    expect(text(ledger.handle, 'victim')).toBe('');
    expect(text(other.handle)).toBe('other doc;');
    expect(ledger.errors.map((e) => [e.kind, e.message])).toEqual([
      ['Forbidden', expect.stringMatching(new RegExp(`entry ${flippedSeq} .*signature does not verify`))],
      ['Forbidden', expect.stringMatching(new RegExp(`entry ${forgedSeq} .*author is not allowed`))],
    ]);
    expect(other.errors.map((e) => [e.kind, e.message])).toEqual([
      ['Forbidden', expect.stringMatching(new RegExp(`entry ${replayedSeq} .*sealed for another document`))],
    ]);

    // Still a working document: a new edit reaches another fresh device, with all good content.
    await write(ledger.handle, 't', 'ada paid 5;');
    const bobFresh = await device(relay, bob);
    const seen = openBlob(bobFresh, 'ledger');
    await seen.handle.whenSynced;
    await vi.waitFor(() => expect(text(seen.handle)).toBe('ada paid 10;bob paid 20;ada paid 5;'));
  });

  it('an envelope under the old key slipped in after a revocation is refused', async () => {
    const first = await startScannedRelay();
    const ada = await person(first, 'ada');
    const bob = await person(first, 'bob');
    const cy = await person(first, 'cy');
    let oldKey: ReturnType<typeof createDocKey> | undefined;
    {
      const adaDevice = await device(first, ada);
      const bobDevice = await device(first, bob);
      await device(first, cy);
      const board = adaDevice.blobs.open('board', { encrypted: true });
      await board.whenSynced;
      await write(board, 't', 'before;');
      await adaDevice.blobs.share('board', bob.userId, 'read_write');
      await adaDevice.blobs.share('board', cy.userId, 'read_write');
      const bobBoard = bobDevice.blobs.open('board', { encrypted: true });
      await bobBoard.whenSynced;
      oldKey = (await bobDevice.encryption.docKeys('blob/board')).keyring.current();
      await adaDevice.blobs.revoke('board', cy.userId);
      await write(board, 't', 'after;');
      await vi.waitFor(() => expect(text(bobBoard)).toBe('before;after;'));
      await adaDevice.close();
      await bobDevice.close();
    }
    expect(oldKey?.epoch).toBe(1);
    // Bob is still a member and signs correctly, but under the key the revocation retired.
    const stale = sealEnvelope({
      docName: 'blob/board',
      key: oldKey as NonNullable<typeof oldKey>,
      author: { ...bob.identity, userId: bob.userId },
      plaintext: (() => {
        const d = new Y.Doc();
        d.getText('t').insert(0, 'stale;');
        return Y.encodeStateAsUpdate(d);
      })(),
    });
    let staleSeq = 0;
    const relay = await editRelayDocs(first, (db) => {
      staleSeq = insertEntry(db, 'blob/board', stale);
    });
    const fresh = await device(relay, ada);
    const board = openBlob(fresh, 'board');
    await board.handle.whenSynced;
    expect(text(board.handle)).toBe('before;after;');
    expect(board.errors.map((e) => [e.kind, e.message])).toEqual([
      [
        'Conflict',
        expect.stringMatching(new RegExp(`entry ${staleSeq} .*epoch 1, older than the required 2`)),
      ],
    ]);
    // Sent to the relay instead, it is refused there.
    expect(await rawSend(relay.wsUrl, bob.apiKey, 'blob/board', stale)).toMatchObject({
      type: 'error',
      kind: 'KeyRotated',
    });
  });

  it('in USER_PRIVATE docs: a flipped bit and a replay into another private doc are refused', async () => {
    const first = await startScannedRelay();
    const ada = await person(first, 'ada');
    const a = `USER_PRIVATE/${ada.userId}/a`;
    const b = `USER_PRIVATE/${ada.userId}/b`;
    {
      const laptop = await device(first, ada);
      const docA = laptop.doc(a);
      const docB = laptop.doc(b);
      await Promise.all([docA.whenSynced, docB.whenSynced]);
      await write(docA, 't', 'good a;');
      await write(docB, 't', 'good b;');
      const phone = await device(first, ada);
      const phoneA = phone.doc(a);
      await phoneA.whenSynced;
      await write(phoneA, 'victim', 'to be damaged');
      await phone.close();
      const fromA = (await first.relay.hub.fetchEncrypted(a as never, 0)).entries[0]?.envelope as Uint8Array;
      expect(await rawSend(first.wsUrl, ada.apiKey, b, fromA)).toMatchObject({
        type: 'error',
        kind: 'Forbidden',
      });
      await laptop.close();
    }
    let flippedSeq = 0;
    let replayedSeq = 0;
    const relay = await editRelayDocs(first, (db) => {
      const [good, victim] = entries(db, a);
      if (!good || !victim) throw new Error('expected two entries');
      const damaged = new Uint8Array(victim.data);
      damaged[120] = (damaged[120] as number) ^ 0x80;
      db.prepare('UPDATE doc_entries SET data = ? WHERE doc = ? AND seq = ?').run(damaged, a, victim.seq);
      flippedSeq = victim.seq;
      replayedSeq = insertEntry(db, b, good.data);
    });
    const fresh = await device(relay, ada);
    const errorsA: SyncError[] = [];
    const errorsB: SyncError[] = [];
    const docA = fresh.doc(a);
    docA.on('error', (e) => errorsA.push(e));
    const docB = fresh.doc(b);
    docB.on('error', (e) => errorsB.push(e));
    await Promise.all([docA.whenSynced, docB.whenSynced]);
    expect(text(docA)).toBe('good a;');
    expect(text(docA, 'victim')).toBe('');
    expect(text(docB)).toBe('good b;');
    expect(errorsA.map((e) => [e.kind, e.message])).toEqual([
      ['Forbidden', expect.stringMatching(new RegExp(`entry ${flippedSeq} .*signature does not verify`))],
    ]);
    expect(errorsB.map((e) => [e.kind, e.message])).toEqual([
      ['Forbidden', expect.stringMatching(new RegExp(`entry ${replayedSeq} .*sealed for another document`))],
    ]);
    await write(docA, 't', 'more;');
    expect(text(docA)).toBe('good a;more;');
  });
});
