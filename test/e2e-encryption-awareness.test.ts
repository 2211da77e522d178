import type { DocHandle } from '@scopesync/client';
import { decodeMuxFrame, encodeMuxFrame, type Message } from '@scopesync/core';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { cleanUp, marker, openDevice, startScannedRelay } from './e2e-encryption-harness.ts';

/*
 * Attack 8 of issue 17, awareness: on an end-to-end encrypted document, cursors and names are
 * sealed under the document key. Members see each other's presence as before; the relay — here
 * read through a raw socket that receives exactly the awareness the relay holds — sees neither.
 */

afterEach(cleanUp);

/** Waits until `handle`'s awareness holds a remote state that satisfies `match`. */
async function remoteState(handle: DocHandle, match: (state: Record<string, unknown>) => boolean) {
  const awareness = handle.awareness;
  for (;;) {
    for (const [id, state] of awareness.getStates()) {
      if (id !== awareness.clientID && match(state)) return state;
    }
    await new Promise((resolve) => awareness.once('change', resolve));
  }
}

/** Every awareness frame the relay sends a raw subscriber of `docName` after it asks for them. */
async function awarenessTheRelayHolds(wsUrl: string, key: string, docName: string): Promise<string> {
  const ws = new WebSocket(`${wsUrl}/sync?key=${key}`);
  const seen: Message[] = [];
  ws.on('message', (data: Buffer) => seen.push(decodeMuxFrame(new Uint8Array(data)).message));
  await new Promise((resolve) => ws.once('open', resolve));
  ws.send(encodeMuxFrame(docName, { type: 'subscribe', mode: 'encrypted', sinceSeq: 0 }));
  ws.send(encodeMuxFrame(docName, { type: 'query-awareness' }));
  while (!seen.some((m) => m.type === 'awareness')) await new Promise((resolve) => setTimeout(resolve, 20));
  ws.close();
  return seen
    .flatMap((m) => (m.type === 'awareness' ? [Buffer.from(m.update).toString('latin1')] : []))
    .join('\n');
}

describe('presence on an encrypted doc', () => {
  it('reaches the other members, sealed: the relay relays names and cursors it cannot read', async () => {
    const relay = await startScannedRelay();
    const laptop = await openDevice(relay.url, { deviceName: 'laptop' });
    const userId = laptop.client.userId as string;
    const phone = await openDevice(relay.url, {
      deviceName: 'phone',
      recoveryPhrase: await laptop.client.encryption.exportRecoveryPhrase(),
    });
    const name = `USER_PRIVATE/${userId}/plans`;
    const mine = laptop.client.doc(name);
    const theirs = phone.client.doc(name);
    await Promise.all([mine.whenSynced, theirs.whenSynced]);
    const secretName = marker('cursor-name');
    theirs.awareness.setLocalState({ watching: true });
    mine.awareness.setLocalState({ user: { name: secretName }, cursor: { index: 42 } });

    const seen = await remoteState(
      theirs,
      (s) => (s.user as { name?: unknown } | undefined)?.name === secretName,
    );
    expect(seen).toMatchObject({ user: { name: secretName, id: userId }, cursor: { index: 42 } });

    const held = await awarenessTheRelayHolds(relay.wsUrl, [...laptop.apiKeys][0] as string, name);
    expect(held).toContain('sealed');
    expect(held).not.toContain(secretName);
    expect(held).not.toContain('cursor');
  });
});
