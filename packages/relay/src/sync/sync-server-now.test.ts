import type { IncomingMessage } from 'node:http';
import {
  type Action,
  type Address,
  type Caller,
  decide,
  decodeDocFrame,
  encodeDocFrame,
  MemoryDocStore,
  type Message,
  parseDocName,
  SyncError,
} from '@scopesync/core';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import { DocHub } from '../documents/doc-hub.ts';
import { LocalEventBus } from '../events/local-event-bus.ts';
import { Metrics } from '../metrics.ts';
import type { CheckedAccess } from './sync-authority.ts';
import { SyncServer } from './sync-server.ts';
import { ALICE, BOB, serveSync, TestAuthority } from './sync-test-authority.ts';

// An upgrade whose key, access decision and document are at hand (the relay on SQLite) is
// answered in the upgrade's own turn, with the same answers and the same audit entries as the
// path that waits.

const NOTES = parseDocName('PUBLIC_RW/_/notes').name;
const ALICE_PUBLIC = parseDocName(`USER_PUBLIC/${ALICE}/profile`).name;
const ALICE_OWN = parseDocName(`USER_PUBLIC/${ALICE}/draft`).name;

/** The test authority, answering in the caller's turn as the relay does on SQLite. */
class ImmediateAuthority extends TestAuthority {
  authenticateNow(request: IncomingMessage): { caller: Caller; credential: string | null } {
    const key = new URL(request.url ?? '/', 'http://x').searchParams.get('key') ?? '';
    const caller = this.keys.get(key);
    if (!caller) throw new SyncError('Unauthorized', 'unknown API key');
    return { caller, credential: key };
  }

  probeNow(caller: Caller, action: Action, address: Address, loaded?: CheckedAccess): CheckedAccess {
    const object = loaded ? loaded.object : (this.objects.get(address.name) ?? null);
    return { decision: decide({ caller, action, address, object }), object };
  }
}

const teardowns: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const t of teardowns.splice(0).reverse()) await t();
});

async function start() {
  const store = new MemoryDocStore();
  const metrics = new Metrics();
  const bus = new LocalEventBus();
  const hub = new DocHub({ store, bus, metrics, log: () => undefined });
  const authority = new ImmediateAuthority();
  const server = new SyncServer({ hub, bus, authority, metrics, log: () => undefined });
  /** Sockets opened by each upgrade before `handleUpgrade` returned. */
  const openedInTurn: number[] = [];
  const { url, close } = await serveSync(server, hub, (req, socket, head) => {
    const before = server.connections;
    server.handleUpgrade(req, socket, head);
    openedInTurn.push(server.connections - before);
  });
  teardowns.push(close);
  return { url, authority, openedInTurn };
}

/** Opens a `/sync/<doc>` socket and resolves with its first `count` frames (or its refusal's status). */
function firstFrames(url: string, count: number, send: Message[] = []): Promise<Message[] | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const frames: Message[] = [];
    teardowns.push(async () => ws.terminate());
    ws.on('message', (data: Buffer) => {
      frames.push(decodeDocFrame(new Uint8Array(data)));
      if (frames.length === count) resolve(frames);
    });
    ws.on('open', () => {
      for (const m of send) ws.send(encodeDocFrame(m as never));
    });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', reject);
  });
}

const EMPTY_SV = new Uint8Array([0]);

describe('SyncServer with an authority that answers at once', () => {
  it('opens a socket in its upgrade’s turn once its document is held, and greets and answers it as Yjs would', async () => {
    const f = await start();
    const ask: Message[] = [{ type: 'sync-step1', stateVector: EMPTY_SV }];
    const first = await firstFrames(`${f.url}/sync/${NOTES}?key=bob-key`, 2, ask);
    const second = await firstFrames(`${f.url}/sync/${NOTES}?key=bob-key`, 2, ask);
    // The first socket's document had to be loaded; the second's was held by the first.
    expect(f.openedInTurn).toEqual([0, 1]);
    const empty = new Y.Doc();
    const expected = [
      { type: 'sync-step1', stateVector: Y.encodeStateVector(empty) },
      { type: 'sync-step2', update: Y.encodeStateAsUpdate(empty, EMPTY_SV) },
    ];
    expect(first).toEqual(expected);
    expect(second).toEqual(expected);

    // With content, the greeting and the answer are the document's own.
    const doc = new Y.Doc();
    doc.getText('t').insert(0, 'hello');
    const update = Y.encodeStateAsUpdate(doc);
    await firstFrames(`${f.url}/sync/${NOTES}?key=bob-key`, 2, [{ type: 'sync-update', update }, ...ask]);
    const third = await firstFrames(`${f.url}/sync/${NOTES}?key=bob-key`, 2, ask);
    expect(third).toEqual([
      { type: 'sync-step1', stateVector: Y.encodeStateVector(doc) },
      { type: 'sync-step2', update: Y.encodeStateAsUpdate(doc, EMPTY_SV) },
    ]);
  });

  it('still records a cross-user read and a refused attempt, and refuses what it may not read', async () => {
    const f = await start();
    f.authority.objects.set(ALICE_PUBLIC, { owner: ALICE, read: 2, write: 1 });
    f.authority.objects.set(ALICE_OWN, { owner: ALICE, read: 1, write: 1 });
    for (let i = 0; i < 2; i++) {
      expect(await firstFrames(`${f.url}/sync/${ALICE_PUBLIC}?key=alice-key`, 1)).toHaveLength(1);
      expect(await firstFrames(`${f.url}/sync/${ALICE_PUBLIC}?key=bob-key`, 1)).toHaveLength(1);
      expect(await firstFrames(`${f.url}/sync/${ALICE_OWN}?key=bob-key`, 1)).toBe(403);
    }
    expect(await firstFrames(`${f.url}/sync/${NOTES}?key=nope`, 1)).toBe(401);
    const bobs = f.authority.audits.filter((a) => a.caller === BOB);
    expect(bobs).toEqual([
      { caller: BOB, action: 'read', name: ALICE_PUBLIC, allowed: true },
      { caller: BOB, action: 'read', name: ALICE_OWN, allowed: false },
      { caller: BOB, action: 'read', name: ALICE_PUBLIC, allowed: true },
      { caller: BOB, action: 'read', name: ALICE_OWN, allowed: false },
    ]);
  });
});
