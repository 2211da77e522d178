import type { FollowFailedEvent, KeyChangedEvent } from '@scopesync/client';
import { ready } from '@scopesync/crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  appendAcked as append,
  cleanUp,
  type Device,
  marker,
  openDevice,
  openReadyDevices,
  publishUnexplainedKeys,
  readDocText as read,
  rotateOntoNewDevice,
  startScannedRelay,
} from './e2e-encryption-harness.ts';

/*
 * The follow sweep (docs/encryption.md, "Per-device keys", step 4), on a real relay with real
 * libsodium: an owner who opens nothing and receives nothing still follows a sharee's signed
 * identity rotation when its client comes online, and a follow that fails is reported
 * (`follow-failed`) and done by the next sweep.
 */

afterEach(cleanUp);

/** Bounded: the sweep runs in the background of the owner's client. */
const WAIT = { timeout: 20_000, interval: 100 };

/** Cy owns an encrypted board with `before` in it, shared with Ada (laptop) read_write; nothing stays open. */
async function sharedBoard(cy: Device, laptop: Device, before: string): Promise<void> {
  const board = cy.client.blobs.open('board', { encrypted: true });
  await board.whenSynced;
  await append(board, before);
  await cy.client.blobs.share('board', laptop.client.userId as string, 'read_write');
  await board.release();
  expect(await read(laptop, 'blob/board')).toBe(before);
}

describe('the owner of a blob shared with a user who rotated while it was away', () => {
  it('follows by itself when its client starts, opening nothing: her new device reads and writes', async () => {
    await ready();
    const relay = await startScannedRelay();
    const [laptop, cy] = await openReadyDevices(relay.url, 'laptop', 'cy');
    const ada = laptop.client.userId as string;
    const [before, fromTablet] = ['before', 'tablet'].map(marker) as [string, string];
    await sharedBoard(cy, laptop, before);

    // Cy's client is closed while Ada rotates.
    await cy.client.close();
    const { newDevice: tablet } = await rotateOntoNewDevice(laptop, relay.url);
    await expect(tablet.client.encryption.docKeys('blob/board')).rejects.toMatchObject({
      kind: 'Unavailable',
    });

    // Cy starts again (same store) and opens nothing: its client sweeps the blobs it owns.
    const listsBefore = (await relay.relay.store.listMemberLists('board')).length;
    const cyAgain = await openDevice(relay.url, {}, cy.indexedDB);
    const failures: FollowFailedEvent[] = [];
    cyAgain.client.on('follow-failed', (event) => failures.push(event));
    // One member list version more, naming Ada's new keys at her level.
    await vi.waitFor(
      async () => expect((await relay.relay.store.listMemberLists('board')).length).toBe(listsBefore + 1),
      WAIT,
    );
    const members = (await cyAgain.client.encryption.docKeys('blob/board')).members?.members ?? [];
    const adaNow = await laptop.client.encryption.publicKeys();
    expect(members.find((m) => m.userId === ada)).toMatchObject({
      level: 'read_write',
      signPublicKey: adaNow.signPublicKey,
      boxPublicKey: adaNow.boxPublicKey,
    });
    expect(await read(tablet, 'blob/board')).toBe(before);

    // Her new device writes, and the owner accepts it.
    const mine = tablet.client.blobs.open('board', { encrypted: true });
    await mine.whenSynced;
    await append(mine, fromTablet);
    await mine.release();
    expect(await read(cyAgain, 'blob/board')).toBe(before + fromTablet);
    expect(failures).toEqual([]);
  });

  it('reports a follow that fails (follow-failed) and follows on the next sweep, when it comes online', async () => {
    await ready();
    const relay = await startScannedRelay();
    const laptop = await openDevice(relay.url, { deviceName: 'laptop' });
    await laptop.client.encryption.ready();
    const ada = laptop.client.userId as string;
    // Cy's grants to the board do not get through while `unreachable` is set (a network down at
    // that moment, for that request only).
    let unreachable = false;
    const cy = await openDevice(relay.url, {
      deviceName: 'cy',
      fetch: (input, init) =>
        unreachable && init?.method === 'PUT' && String(input).includes('/blob/board/keys/')
          ? Promise.reject(new TypeError('fetch failed'))
          : fetch(input, init),
    });
    await cy.client.encryption.ready();
    const before = marker('before');
    await sharedBoard(cy, laptop, before);
    const listsBefore = (await relay.relay.store.listMemberLists('board')).length;
    const failures: FollowFailedEvent[] = [];
    cy.client.on('follow-failed', (event) => failures.push(event));

    cy.client.disconnect();
    const { newDevice: tablet } = await rotateOntoNewDevice(laptop, relay.url);

    // A sweep while the grants cannot be stored: the follow fails, and says so.
    unreachable = true;
    const first = await cy.client.encryption.followRotations();
    expect(first.complete).toBe(false);
    expect(first.failed).toEqual([
      expect.objectContaining({
        blobId: 'board',
        userId: ada,
        error: expect.objectContaining({ kind: 'Unavailable' }),
      }),
    ]);
    expect(failures).toContainEqual(
      expect.objectContaining({
        blobId: 'board',
        userId: ada,
        error: expect.objectContaining({ kind: 'Unavailable' }),
      }),
    );
    // Nothing half done: the member list still names her old keys, her new device opens nothing.
    expect((await relay.relay.store.listMemberLists('board')).length).toBe(listsBefore);
    await expect(tablet.client.encryption.docKeys('blob/board')).rejects.toMatchObject({
      kind: 'Unavailable',
    });
    // Every attempt under way has ended (they run one at a time per blob) before the way clears.
    await cy.client.encryption.followRotations();

    // Back online with the network fine: the sweep on connecting follows.
    unreachable = false;
    cy.client.connect();
    await vi.waitFor(
      async () => expect((await relay.relay.store.listMemberLists('board')).length).toBe(listsBefore + 1),
      WAIT,
    );
    expect(await read(tablet, 'blob/board')).toBe(before);
    const members = (await cy.client.encryption.docKeys('blob/board')).members?.members ?? [];
    expect(members.find((m) => m.userId === ada)?.signPublicKey).toEqual(
      (await laptop.client.encryption.publicKeys()).signPublicKey,
    );
  });

  it('does not follow an unexplained key change it finds (no signed rotation): the app decides', async () => {
    await ready();
    const relay = await startScannedRelay();
    const [laptop, cy] = await openReadyDevices(relay.url, 'laptop', 'cy');
    const ada = laptop.client.userId as string;
    await sharedBoard(cy, laptop, marker('before'));
    const listsBefore = (await relay.relay.store.listMemberLists('board')).length;
    const grantsBefore = await relay.relay.store.listKeyGrants('board', ada);

    // The relay (an admin, or a relay lying) publishes other keys for Ada, with no rotation chain.
    await publishUnexplainedKeys(relay, ada);
    const changes: KeyChangedEvent[] = [];
    cy.client.on('key-changed', (event) => changes.push(event));
    const sweep = await cy.client.encryption.followRotations();
    expect(sweep).toMatchObject({ checked: 1, followed: [], failed: [] });
    expect(changes.map((e) => [e.userId, e.rotated])).toEqual([[ada, false]]);
    expect((await relay.relay.store.listMemberLists('board')).length).toBe(listsBefore);
    expect(await relay.relay.store.listKeyGrants('board', ada)).toEqual(grantsBefore);
  });
});
