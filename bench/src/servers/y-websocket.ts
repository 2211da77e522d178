import { join } from 'node:path';
import { dirSize } from '../paths.ts';
import { type Peer, type PeerOptions, processPeer, wsBase } from './peer.ts';
import { ServerProcess } from './server-process.ts';

/** Starts the reference y-websocket 2.x server with y-leveldb persistence in `dataDir/leveldb`. */
export async function startYWebsocket(options: PeerOptions): Promise<Peer> {
  const leveldb = join(options.dataDir, 'leveldb');
  const proc = await ServerProcess.start({
    entry: new URL('./y-websocket.child.ts', import.meta.url),
    env: { YPERSISTENCE: leveldb },
    logFile: options.logFile,
  });
  const base = wsBase(proc);
  return processPeer(proc, {
    name: 'y-websocket',
    framing: 'y-websocket',
    docUrl: (name) => `${base}/${encodeURIComponent(name)}`,
    register: async () => undefined,
    storedBytes: () => dirSize(leveldb),
    ackedWrite: null,
  });
}
