import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ClientStore,
  createClient,
  type DocHandle,
  indexedDbClientStore,
  type SyncClient,
} from '@scopesync/client';
import { createRelay } from '@scopesync/relay';
import { type SeededRandom, seededRandom, seeds, withSeed } from '@scopesync/testing';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';

/*
 * N clients edit one document over many rounds; each round every client may go offline,
 * come back, restart (reopening its IndexedDB profile) and make random edits. At the end all
 * of them, and a fresh reader, hold the same state. The seed decides every choice; a failure
 * prints it, and SCOPESYNC_SEED=<seed> replays the same script.
 */

const CLIENTS = 5;
const ROUNDS = 20;

interface Peer {
  readonly name: string;
  readonly profile: () => ClientStore;
  client: SyncClient;
  doc: DocHandle;
  online: boolean;
}

function snapshot(doc: DocHandle): unknown {
  const d = doc.doc;
  return { text: d.getText('t').toString(), map: d.getMap('m').toJSON(), list: d.getArray('a').toArray() };
}

function edit(random: SeededRandom, doc: DocHandle, who: string): Promise<void> {
  return doc.transact((d) => {
    const text = d.getText('t');
    switch (random.int(0, 4)) {
      case 0:
      case 1:
        text.insert(random.int(0, text.length), `${random.word(1, 5)} `);
        break;
      case 2:
        if (text.length > 0) {
          const at = random.int(0, text.length - 1);
          text.delete(at, random.int(1, Math.min(4, text.length - at)));
        }
        break;
      case 3:
        d.getMap('m').set(random.pick(['a', 'b', 'c', 'd']), `${who}:${random.word(1, 4)}`);
        break;
      default:
        d.getArray('a').insert(random.int(0, d.getArray('a').length), [random.int(0, 999)]);
    }
  });
}

describe('convergence', () => {
  for (const seed of seeds(3)) {
    it(`${CLIENTS} clients with random offline periods, restarts and edits converge [seed ${seed}]`, () =>
      withSeed('convergence-clients', seed, async (random) => {
        const dir = mkdtempSync(join(tmpdir(), 'scopesync-converge-'));
        const relay = createRelay({ dataDir: dir, port: 0, rateLimit: false, log: () => undefined });
        const peers: Peer[] = [];
        let wentOffline = 0;
        let restarts = 0;
        // Jitter draws happen at timing-dependent moments: keep them off the edit script's stream.
        const jitter = seededRandom((seed ^ 0x9e3779b9) >>> 0);
        try {
          const { url } = await relay.listen();
          const docName = `PUBLIC_RW/_/converge-${seed}`;
          // A first start registers a device; a restart finds its key in the profile.
          const open = (name: string, profile: () => ClientStore, register = true): Promise<SyncClient> =>
            createClient({
              url,
              WebSocket,
              store: profile(),
              ...(register ? { deviceName: name } : {}),
              backoff: { initialMs: 10, maxMs: 100 },
              random: () => jitter.next(),
            });

          for (let i = 0; i < CLIENTS; i++) {
            const indexedDB = new IDBFactory();
            const profile = () => indexedDbClientStore({ name: `peer-${i}`, indexedDB, IDBKeyRange });
            const client = await open(`peer-${i}`, profile);
            peers.push({ name: `peer-${i}`, profile, client, doc: client.doc(docName), online: true });
          }

          for (let round = 0; round < ROUNDS; round++) {
            for (const peer of random.shuffle(peers)) {
              const dice = random.next();
              if (dice < 0.2) {
                if (peer.online) {
                  peer.client.disconnect();
                  wentOffline++;
                } else peer.client.connect();
                peer.online = !peer.online;
              } else if (dice < 0.27) {
                // Restart: close everything and reopen the same IndexedDB profile.
                await peer.client.close();
                restarts++;
                peer.client = await open(peer.name, peer.profile, false);
                peer.doc = peer.client.doc(docName);
                if (!peer.online) peer.client.disconnect();
              }
              await peer.doc.whenLoaded;
              for (let n = random.int(0, 3); n > 0; n--) await edit(random, peer.doc, peer.name);
            }
            // Let some frames cross before the next round, but not all.
            await new Promise((resolve) => setTimeout(resolve, random.int(0, 15)));
          }

          for (const peer of peers) {
            if (!peer.online) peer.client.connect();
            peer.online = true;
          }
          for (const peer of peers) await peer.doc.whenAcked();
          const reader = await open('reader', () =>
            indexedDbClientStore({ name: 'reader', indexedDB: new IDBFactory(), IDBKeyRange }),
          );
          peers.push({
            name: 'reader',
            profile: () => reader.store,
            client: reader,
            doc: reader.doc(docName),
            online: true,
          });
          await vi.waitFor(
            () => {
              const expected = snapshot(peers[0]?.doc as DocHandle);
              for (const peer of peers) expect(snapshot(peer.doc), peer.name).toEqual(expected);
            },
            { timeout: 30_000, interval: 50 },
          );
          expect((snapshot(peers[0]?.doc as DocHandle) as { text: string }).text.length).toBeGreaterThan(0);
          // The script did exercise what it is about.
          expect(wentOffline).toBeGreaterThan(0);
          expect(restarts).toBeGreaterThan(0);
        } finally {
          for (const peer of peers) await peer.client.close();
          await relay.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }));
  }
});
