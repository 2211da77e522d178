import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Peer, type PeerOptions, processPeer, wsBase } from './peer.ts';
import { ServerProcess } from './server-process.ts';

/** Starts Hocuspocus 3.x with its SQLite extension on `dataDir/hocuspocus.sqlite`. */
export async function startHocuspocus(options: PeerOptions): Promise<Peer> {
  const database = join(options.dataDir, 'hocuspocus.sqlite');
  const proc = await ServerProcess.start({
    entry: new URL('./hocuspocus.child.ts', import.meta.url),
    env: { BENCH_SQLITE_FILE: database },
    logFile: options.logFile,
  });
  const base = wsBase(proc);
  const url = `http://127.0.0.1:${proc.port}`;
  return processPeer(proc, {
    name: 'hocuspocus',
    framing: 'hocuspocus',
    // One socket per document, like a HocuspocusProvider with its own websocket.
    docUrl: () => `${base}/`,
    register: async () => undefined,
    async storedBytes() {
      let total = 0;
      for (const suffix of ['', '-wal', '-journal']) {
        try {
          total += (await stat(database + suffix)).size;
        } catch {
          // absent
        }
      }
      return total;
    },
    ackedWrite: {
      url: (key) => `${url}/bench-write/${encodeURIComponent(key)}`,
      note: 'Hocuspocus has no HTTP write API: a bench route writes through openDirectConnection().transact(), which runs the SQLite store hook at once; the extension does not await its INSERT',
    },
  });
}
