import { SyncError } from '@scopesync/core';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';

/** One participant of an {@link AwarenessRoom}: a single-document socket or a multiplexed subscription. */
export interface AwarenessPeer {
  /** The authenticated caller's id (`user_…`, `guest`, …), written into each state it sends as `user.id`. */
  readonly userId: string;
  /**
   * Peers with the same non-null key may take over each other's awareness client ids (the
   * same user reconnecting before the old socket timed out). Null: never (guests).
   */
  readonly claimKey: string | null;
  /** Delivers an encoded awareness update (y-protocols `encodeAwarenessUpdate` bytes). */
  send(update: Uint8Array): void;
}

/** Options of an {@link AwarenessRoom}. */
export interface AwarenessRoomOptions {
  /** Most awareness client ids one peer may claim. Default 8. */
  readonly maxClientsPerPeer?: number | undefined;
  /** Most entries one awareness update may carry. Default 1000. */
  readonly maxEntriesPerUpdate?: number | undefined;
}

interface ClientState {
  clock: number;
  /** The bound JSON state, or null once removed. */
  state: string | null;
  owner: AwarenessPeer;
  /** When a state from another relay was last renewed (ms); undefined for local peers' states. */
  remoteAt?: number;
}

/** States from another relay not renewed for this long are no longer handed to late joiners (y-protocols renews every 15 s). */
const REMOTE_STATE_TTL_MS = 30_000;

interface Entry {
  readonly clientId: number;
  readonly clock: number;
  readonly state: string;
}

/**
 * The awareness (presence) of one document on the relay, bound to authenticated callers.
 *
 * Binding rules: a peer claims an awareness client id the first time it sends it, and only
 * it may update that id afterwards — entries for ids claimed by another peer are stripped
 * (the same user's new socket may take an id over, for reconnects). Every state must be a
 * JSON object; the relay sets `state.user.id` to the sender's caller id, keeping the rest of
 * `state.user` (name, colour…) so that editor cursors keep working, and dropping any forged
 * `user.id`. Accepted entries are broadcast to every peer, the sender included (y-websocket
 * clients need the echo to know the socket is alive). A leaving peer's states are removed
 * and the removal broadcast.
 */
export class AwarenessRoom {
  readonly #clients = new Map<number, ClientState>();
  /** Peers and the client ids each claimed; null until a peer claims one (most never send awareness). */
  readonly #peers = new Map<AwarenessPeer, Set<number> | null>();
  readonly #maxClientsPerPeer: number;
  readonly #maxEntries: number;

  constructor(options: AwarenessRoomOptions = {}) {
    this.#maxClientsPerPeer = options.maxClientsPerPeer ?? 8;
    this.#maxEntries = options.maxEntriesPerUpdate ?? 1000;
  }

  /** Peers in the room. */
  get size(): number {
    return this.#peers.size;
  }

  /** Adds a peer; it receives later broadcasts. Send it {@link encodeStates} to catch up. */
  join(peer: AwarenessPeer): void {
    if (!this.#peers.has(peer)) this.#peers.set(peer, null);
  }

  /** Removes a peer and broadcasts the removal of every state it claimed. */
  leave(peer: AwarenessPeer): void {
    if (!this.#peers.has(peer)) return;
    const claimed = this.#peers.get(peer) ?? [];
    this.#peers.delete(peer);
    const removed: Array<{ clientId: number; clock: number; state: string }> = [];
    for (const clientId of claimed) {
      const client = this.#clients.get(clientId);
      if (!client || client.owner !== peer) continue;
      this.#clients.delete(clientId);
      if (client.state !== null) removed.push({ clientId, clock: client.clock + 1, state: 'null' });
    }
    if (removed.length > 0) this.#broadcast(encodeEntries(removed));
  }

  /**
   * Applies an awareness update from `peer`, bound as described on the class, and broadcasts
   * what it accepted. Returns the accepted entries as one update (what other relays need), or
   * null. Throws SyncError('InvalidMessage') for a malformed update.
   */
  receive(peer: AwarenessPeer, update: Uint8Array): Uint8Array | null {
    if (!this.#peers.has(peer)) return null;
    let claimed = this.#peers.get(peer) ?? null;
    const accepted: Entry[] = [];
    for (const { clientId, clock, json } of this.#decode(update)) {
      const client = this.#clients.get(clientId);
      let takeover = false;
      if (client && client.owner !== peer) {
        takeover = peer.claimKey !== null && client.owner.claimKey === peer.claimKey;
        if (!takeover) continue; // someone else's client id: strip
      } else if (!client && claimed !== null && claimed.size >= this.#maxClientsPerPeer) {
        // A client that rebuilt its doc (a refused edit) moves to a new id after removing the
        // old one: removed ids make room, so only live states count against the limit.
        if (!this.#forgetRemovedClaim(peer, claimed)) continue;
      }
      const state = json === 'null' ? null : bindState(json, peer.userId);
      if (state === undefined) continue; // not a JSON object
      if (!client && state === null) continue; // removing what was never there
      if (client) {
        // y-protocols' rule: newer clocks win; a removal at the same clock also applies. A
        // reconnecting client re-announces its state at the same clock: let it take over.
        const fresh =
          clock > client.clock ||
          (clock === client.clock && ((state === null && client.state !== null) || takeover));
        if (!fresh) continue;
      }
      if (client && client.owner !== peer) this.#peers.get(client.owner)?.delete(clientId);
      this.#clients.set(clientId, { clock, state, owner: peer });
      if (claimed === null) {
        claimed = new Set();
        this.#peers.set(peer, claimed);
      }
      claimed.add(clientId);
      accepted.push({ clientId, clock, state: state ?? 'null' });
    }
    if (accepted.length === 0) return null;
    const encoded = encodeEntries(accepted);
    this.#broadcast(encoded);
    return encoded;
  }

  /**
   * Applies an update another relay accepted (already bound to its senders there) and
   * broadcasts it to this room's peers. Its client ids belong to that relay's sockets: local
   * peers cannot take them over, except the same user reconnecting here.
   */
  receiveRemote(relayId: string, update: Uint8Array, now: number = Date.now()): void {
    const accepted: Entry[] = [];
    for (const { clientId, clock, json } of this.#decode(update)) {
      const client = this.#clients.get(clientId);
      if (client && client.remoteAt === undefined) continue; // a local socket's id
      if (client && clock < client.clock) continue;
      const state = json === 'null' ? null : json;
      this.#clients.set(clientId, { clock, state, owner: remotePeer(relayId, state), remoteAt: now });
      accepted.push({ clientId, clock, state: json });
    }
    if (accepted.length > 0) this.#broadcast(encodeEntries(accepted));
  }

  /** Drops one of `peer`'s claimed ids whose state was removed; false when every one is live. */
  #forgetRemovedClaim(peer: AwarenessPeer, claimed: Set<number>): boolean {
    for (const clientId of claimed) {
      const client = this.#clients.get(clientId);
      if (client && client.owner === peer && client.state !== null) continue;
      claimed.delete(clientId);
      if (client?.owner === peer) this.#clients.delete(clientId);
      return true;
    }
    return false;
  }

  /** Every current state as one awareness update, or null when there is none (answers query-awareness). */
  encodeStates(now: number = Date.now()): Uint8Array | null {
    const entries: Entry[] = [];
    for (const [clientId, client] of this.#clients) {
      if (client.remoteAt !== undefined && now - client.remoteAt > REMOTE_STATE_TTL_MS) {
        this.#clients.delete(clientId); // its relay went quiet: the state is stale
        continue;
      }
      if (client.state !== null) entries.push({ clientId, clock: client.clock, state: client.state });
    }
    return entries.length > 0 ? encodeEntries(entries) : null;
  }

  #broadcast(update: Uint8Array): void {
    for (const peer of this.#peers.keys()) peer.send(update);
  }

  #decode(update: Uint8Array): Array<{ clientId: number; clock: number; json: string }> {
    try {
      const decoder = decoding.createDecoder(update);
      const count = decoding.readVarUint(decoder);
      if (count > this.#maxEntries) throw new Error(`${count} entries`);
      const out: Array<{ clientId: number; clock: number; json: string }> = [];
      for (let i = 0; i < count; i++) {
        const clientId = decoding.readVarUint(decoder);
        const clock = decoding.readVarUint(decoder);
        const json = decoding.readVarString(decoder);
        out.push({ clientId, clock, json });
      }
      if (decoding.hasContent(decoder)) throw new Error('trailing bytes');
      return out;
    } catch (error) {
      throw new SyncError('InvalidMessage', 'malformed awareness update', { cause: error });
    }
  }
}

/** The owner of a state another relay reported: it may be taken over only by the same user reconnecting here. */
function remotePeer(relayId: string, state: string | null): AwarenessPeer {
  let userId: string | null = null;
  try {
    const parsed: unknown = state === null ? null : JSON.parse(state);
    const user = (parsed as { user?: { id?: unknown } } | null)?.user?.id;
    if (typeof user === 'string' && user.startsWith('user_')) userId = user;
  } catch {
    // not JSON: nobody may take it over
  }
  return { userId: `relay:${relayId}`, claimKey: userId, send: () => undefined };
}

/** The state with `user.id` bound to `userId`, as JSON; null for a removal; undefined when not an object. */
function bindState(json: string, userId: string): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new SyncError('InvalidMessage', 'awareness state is not JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const state = value as Record<string, unknown>;
  const user = state.user;
  const bound =
    user !== null && typeof user === 'object' && !Array.isArray(user)
      ? { ...(user as Record<string, unknown>), id: userId }
      : { id: userId };
  return JSON.stringify({ ...state, user: bound });
}

function encodeEntries(entries: readonly Entry[]): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, entries.length);
  for (const e of entries) {
    encoding.writeVarUint(encoder, e.clientId);
    encoding.writeVarUint(encoder, e.clock);
    encoding.writeVarString(encoder, e.state);
  }
  return encoding.toUint8Array(encoder);
}
