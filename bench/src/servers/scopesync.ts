import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SqliteDocStore } from '@scopesync/store-sqlite';
import { type Peer, type PeerOptions, processPeer, wsBase } from './peer.ts';
import { ServerProcess } from './server-process.ts';

/** A fresh API key for one bench device, from POST /keys on the relay at `url`. */
export async function registerKey(url: string, deviceName: string): Promise<string> {
  const response = await fetch(`${url}/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ device_name: deviceName }),
  });
  if (!response.ok) throw new Error(`POST /keys answered ${response.status}: ${await response.text()}`);
  const { key } = (await response.json()) as { key: string };
  return key;
}

/** The y-websocket-compatible endpoint of document `name` on the relay at ws base `base`. */
export function syncUrl(base: string, name: string, key?: string): string {
  return `${base}/sync/${encodeURIComponent(name)}${key ? `?key=${encodeURIComponent(key)}` : ''}`;
}

/**
 * Starts our relay (auth, ACL checks, audit and its SQLite store on) in a child process.
 * Bench clients register a key each via POST /keys and connect with ?key=. With
 * `relayStore: 'memory'` the same relay keeps nothing on disk, and the workloads that read or
 * survive its store have nothing to read.
 */
export async function startScopesync(options: PeerOptions): Promise<Peer> {
  const dataDir = join(options.dataDir, 'relay');
  const durable = options.relayStore !== 'memory';
  const proc = await ServerProcess.start({
    entry: new URL('./scopesync.child.ts', import.meta.url),
    env: {
      BENCH_RELAY_DATA_DIR: dataDir,
      ...(durable ? {} : { BENCH_RELAY_MEMORY_STORES: '1' }),
      ...(options.docIdleMs === undefined ? {} : { BENCH_RELAY_DOC_IDLE_MS: String(options.docIdleMs) }),
      ...(options.maxFramesPerSecond === undefined
        ? {}
        : { BENCH_RELAY_MAX_FRAMES_PER_SECOND: String(options.maxFramesPerSecond) }),
    },
    logFile: options.logFile,
  });
  const base = wsBase(proc);
  const url = `http://127.0.0.1:${proc.port}`;
  const endpoints = {
    name: 'scopesync',
    framing: 'y-websocket',
    docUrl: (name: string, key?: string) => syncUrl(base, name, key),
    register: (deviceName: string) => registerKey(url, deviceName),
  } as const;
  if (!durable) return processPeer(proc, { ...endpoints, storedBytes: async () => null, ackedWrite: null });
  return processPeer(proc, {
    ...endpoints,
    // The document log only (docs.sqlite and its WAL), like the peers' figures; users, keys
    // and the audit chain live in relay.sqlite.
    storedBytes: async () => {
      let total = 0;
      for (const suffix of ['', '-wal']) {
        try {
          total += (await stat(join(dataDir, `docs.sqlite${suffix}`))).size;
        } catch {
          // absent
        }
      }
      return total;
    },
    // Read through the store's own API after a clean shutdown, so no schema knowledge here.
    async storedEntries() {
      const store = new SqliteDocStore({ path: join(dataDir, 'docs.sqlite') });
      try {
        let count = 0;
        let bytes = 0;
        for (const doc of await store.docs()) {
          for (const entry of await store.load(doc)) {
            count++;
            bytes += entry.data.byteLength;
          }
        }
        return { count, bytes };
      } finally {
        await store.close();
      }
    },
    ackedWrite: {
      url: (key) => `${url}/userdata/_/PUBLIC_RW/${encodeURIComponent(key)}`,
      note: 'POST /userdata answers once the SQLite transaction holding the write has committed',
    },
  });
}
