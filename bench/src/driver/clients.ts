import type { Peer } from '../servers/peer.ts';
import { SyncClient } from './sync-client.ts';
import { pool } from './time.ts';

/** One client to open: the document and, for our relay, the API key it connects with. */
export interface ClientSpec {
  readonly docName: string;
  readonly key?: string | undefined;
  readonly sendOnly?: boolean;
}

/** Registers `count` bench devices (POST /keys on our relay; nothing on the peers). */
export async function registerMany(
  peer: Peer,
  count: number,
  prefix: string,
): Promise<Array<string | undefined>> {
  // Bounded in time, but long enough for 10,000 registrations on a busy machine.
  return pool(count, 16, Math.max(120_000, count * 40), (i) => peer.register(`${prefix}-${i}`));
}

/** Opens one client and waits for its initial sync. */
export async function openClient(peer: Peer, spec: ClientSpec, timeoutMs = 15_000): Promise<SyncClient> {
  const key = spec.key === undefined ? await peer.register(`bench-${spec.docName}`) : spec.key;
  return SyncClient.open(
    {
      url: peer.docUrl(spec.docName, key),
      docName: spec.docName,
      framing: peer.framing,
      sendOnly: spec.sendOnly ?? false,
    },
    timeoutMs,
  );
}

/**
 * Opens every client, at most `concurrency` handshakes at a time, and waits until each has
 * synced. With several peers (processes of one deployment), client `i` goes to
 * `peers[i % peers.length]`. On any failure the ones already open are dropped and the error
 * is passed on.
 */
export async function openClients(
  peers: Peer | readonly Peer[],
  specs: readonly ClientSpec[],
  concurrency = 32,
  deadlineMs = 180_000,
): Promise<SyncClient[]> {
  const targets: readonly Peer[] = Array.isArray(peers) ? peers : [peers as Peer];
  if (targets.length === 0) throw new Error('openClients needs at least one peer');
  const opened: SyncClient[] = [];
  try {
    // pool() returns results in spec order.
    return await pool(specs.length, concurrency, deadlineMs, async (i) => {
      const client = await openClient(targets[i % targets.length]!, specs[i]!);
      opened.push(client);
      return client;
    });
  } catch (error) {
    for (const client of opened) client.terminate();
    throw error;
  }
}

/** Closes all clients normally, a bounded number at a time. */
export async function closeClients(clients: readonly SyncClient[]): Promise<void> {
  await pool(clients.length, 256, 60_000, (i) => clients[i]!.close());
}
