import { expect, vi } from 'vitest';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { call } from './http-client.ts';
import type { Fixture } from './ws-fuzz-fixture.ts';
import type { DocProbe, FuzzSocket } from './ws-fuzz-sockets.ts';

// After the WebSocket fuzz: the relay still serves. Its health answers, the bystander's socket
// outlived every fuzzing one, stock y-websocket clients sync on a fresh document and on fuzzed
// ones, and no socket was left behind half-open.

/** A stock y-websocket client: resolves once synced. */
function provider(f: Fixture, name: string, key?: string) {
  const doc = new Y.Doc();
  const p = new WebsocketProvider(`${f.relay.wsUrl}/sync`, name, doc, {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    params: key === undefined ? {} : { key },
    disableBc: true,
  });
  const synced = new Promise<void>((resolve) => {
    const onSync = (isSynced: boolean): void => {
      if (!isSynced) return;
      p.off('sync', onSync);
      resolve();
    };
    p.on('sync', onSync);
  });
  return { doc, p, synced };
}

/** Expects the relay to serve as before the fuzz; closes `bystander`, whose `bystanderProbe` still answers. */
export async function expectStillServing(
  f: Fixture,
  bystander: FuzzSocket,
  bystanderProbe: DocProbe,
): Promise<void> {
  expect((await call(f.relay.url, 'GET', '/health')).status).toBe(200);
  expect(bystander.closed).toBe(null);
  expect(await bystanderProbe.probe()).not.toBe('closed');
  const a = provider(f, 'PUBLIC_RW/_/control-after');
  const b = provider(f, 'PUBLIC_RW/_/control-after');
  const fuzzed = provider(f, 'PUBLIC_RW/_/board');
  const reader = provider(f, `USER_PUBLIC/${f.alice}/profile`, f.bob.key);
  try {
    await Promise.all([a.synced, b.synced, fuzzed.synced, reader.synced]);
    a.doc.getText('t').insert(0, 'still syncing');
    await new Promise<void>((resolve) => {
      const check = () => {
        if (b.doc.getText('t').toString() !== 'still syncing') return;
        b.doc.off('update', check);
        resolve();
      };
      b.doc.on('update', check);
      check();
    });
    expect(reader.doc.getMap('data').get('name')).toBe('Ada');
  } finally {
    for (const x of [a, b, fuzzed, reader]) x.p.destroy();
    await bystander.close();
  }
  // Every socket closed: none left behind half-open by a refused frame.
  await vi.waitFor(() => expect(f.relay.relay.syncServer.connections).toBe(0), { timeout: 5000 });
}
