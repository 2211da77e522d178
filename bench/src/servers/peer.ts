import type { ServerProcess } from './server-process.ts';

/** The three servers a run compares. */
export const PEER_NAMES = ['scopesync', 'y-websocket', 'hocuspocus'] as const;
export type PeerName = (typeof PEER_NAMES)[number];

/**
 * How a client speaks y-protocols to the server: bare frames on a per-document socket
 * (y-websocket, our /sync/<doc> endpoint), or Hocuspocus's frames prefixed with the
 * document name and opened with an auth message.
 */
export type Framing = 'y-websocket' | 'hocuspocus';

/** A write the server acknowledges over HTTP, used by the durability workload. */
export interface AckedWrite {
  /** URL for one write of the value stored under `key`. */
  url(key: string): string;
  /** What the acknowledgement means for this server. */
  readonly note: string;
}

/** Options every peer accepts. */
export interface PeerOptions {
  /** The peer's data directory (created by the caller, reused across a restart). */
  readonly dataDir: string;
  /** Where the server child's output goes. */
  readonly logFile: string;
  /**
   * How long an unused document stays in memory, where the server has such a setting (our
   * relay's `docs.idleMs`, default 30 s); the peers unload on the last close and ignore it.
   */
  readonly docIdleMs?: number | undefined;
  /**
   * Frames per second one socket, and one caller over all its sockets, may send (our relay's
   * defaults: 2,000 and 10,000, over them the socket is closed with 4429); the peers have no
   * such limit and ignore it.
   */
  readonly maxFramesPerSecond?: number | undefined;
  /**
   * Where our relay keeps documents: its SQLite files, as shipped (the default), or memory only,
   * a diagnostic (`--relay-store=memory`) that shows in one run what the durable commit costs.
   * The peers ignore it.
   */
  readonly relayStore?: RelayStoreKind | undefined;
}

/** Our relay's stores in a run: `sqlite` as shipped, `memory` to measure without the disk. */
export type RelayStoreKind = 'sqlite' | 'memory';

/** A running server under test, in its own child process. */
export interface Peer {
  readonly name: PeerName;
  /** HTTP base URL (loopback). */
  readonly url: string;
  readonly framing: Framing;
  /** WebSocket URL a client opens for document `name`, with an API key where the server takes one. */
  docUrl(name: string, key?: string): string;
  /** A credential for one bench client (our relay: a fresh key from POST /keys; peers: none). */
  register(deviceName: string): Promise<string | undefined>;
  /** Resident set size of the server process in bytes. */
  rss(): Promise<number>;
  /** CPU seconds the server process has used so far (user + system), null where it cannot be read. */
  cpuSeconds(): Promise<number | null>;
  /** Bytes the server keeps on disk for everything stored so far, null when it does not persist. */
  storedBytes(): Promise<number | null>;
  /** Entries in the server's document log and their total size, where it keeps one (our relay). */
  storedEntries?(): Promise<{ readonly count: number; readonly bytes: number }>;
  /** Acknowledged HTTP writes, when the server has an equivalent of our POST /userdata. */
  readonly ackedWrite: AckedWrite | null;
  /**
   * Stops the server and waits for its child to exit. With `flush` it shuts down cleanly,
   * writing out what it stores; without, the child is killed at once (its data is thrown
   * away anyway). Idempotent.
   */
  close(options?: { readonly flush?: boolean }): Promise<void>;
}

/** Starts a peer; a second call with the same `dataDir` restarts it on its stored data. */
export type StartPeer = (options: PeerOptions) => Promise<Peer>;

/** The parts of a Peer every server shares, built on its ServerProcess. */
export function processPeer(
  proc: ServerProcess,
  parts: Omit<Peer, 'url' | 'rss' | 'cpuSeconds' | 'close'>,
): Peer {
  return {
    ...parts,
    url: `http://127.0.0.1:${proc.port}`,
    rss: () => proc.rss(),
    cpuSeconds: () => proc.cpuSeconds(),
    close: (options) => (options?.flush ? proc.close() : proc.kill()),
  };
}

/** ws:// base for an HTTP port on loopback. */
export function wsBase(proc: ServerProcess): string {
  return `ws://127.0.0.1:${proc.port}`;
}
